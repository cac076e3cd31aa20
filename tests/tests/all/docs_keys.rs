//! `docs/pipeline.md` documents exactly the keys the pipeline file accepts.
//! The accepted keys of each table come from the loader itself: an unknown
//! key makes serde list every field the table's struct has ("expected one of
//! `a`, `b`, …"), which is compared with the key column of the table the
//! docs give for that section.

use std::collections::BTreeSet;

/// Documented keys per section heading (`[pipeline.batch]`, `Top level`, …):
/// the first column of the table after the heading.
fn documented() -> Vec<(String, BTreeSet<String>)> {
    let text = std::fs::read_to_string(weir_tests::workspace_dir().join("docs/pipeline.md"))
        .expect("docs/pipeline.md");
    let mut sections: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix('#') {
            let heading = heading.trim_start_matches('#').trim();
            let name = heading.split('`').nth(1).unwrap_or(heading).to_string();
            sections.push((name, BTreeSet::new()));
        } else if let Some(row) = line.strip_prefix("| `")
            && let Some((key, _)) = row.split_once('`')
            && let Some((_, keys)) = sections.last_mut()
        {
            keys.insert(key.trim_matches(|c| c == '[' || c == ']').to_string());
        }
    }
    sections
}

/// The fields serde expects where `zz_unknown = 1` was put in `toml`.
fn accepted(toml: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.toml");
    std::fs::write(&path, toml).unwrap();
    let error = match weir_runtime::pipeline::read(&path) {
        Ok(_) => panic!("an unknown key must be refused:\n{toml}"),
        Err(e) => e.to_string(),
    };
    let line = error
        .lines()
        .find(|l| l.contains("unknown field `zz_unknown`"))
        .unwrap_or_else(|| panic!("no unknown-field problem in:\n{error}"));
    let expected = line
        .split_once("expected one of ")
        .or_else(|| line.split_once("expected "))
        .unwrap_or_else(|| panic!("{line}"))
        .1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

const BASE: &str = r#"
checkpoint_dir = "c"
dead_letters = "d"
"#;

fn with(section: &str) -> String {
    match section {
        "Top level" => format!("zz_unknown = 1\n{BASE}"),
        "[kafka]" => format!("{BASE}[kafka]\nbrokers = \"b\"\nzz_unknown = 1\n"),
        "[admin]" => format!("{BASE}[admin]\ntoken_env = \"T\"\nzz_unknown = 1\n"),
        "[[pipeline]]" => format!("{BASE}[[pipeline]]\nname = \"p\"\nzz_unknown = 1\n"),
        "[pipeline.source.kafka]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.kafka]\ntopics = [\"t\"]\ngroup_id = \"g\"\nzz_unknown = 1\n"
        ),
        "[pipeline.source.delta]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\nzz_unknown = 1\n"
        ),
        "[pipeline.source.changes]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.changes]\ntables = {{ a = \"t\" }}\nzz_unknown = 1\n"
        ),
        "[pipeline.sink.kafka]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.sink]]\nname = \"k\"\n[pipeline.sink.kafka]\ntopic = \"t\"\nvalue = \"v\"\nzz_unknown = 1\n"
        ),
        "[pipeline.source.files]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.files]\ndir = \"l\"\nformat = \"csv\"\nzz_unknown = 1\n"
        ),
        "[pipeline.batch]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[pipeline.batch]\nzz_unknown = 1\n"
        ),
        "[[pipeline.stage]]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.stage]]\nname = \"s\"\nplugin = \"x.wasm\"\nzz_unknown = 1\n"
        ),
        "[pipeline.stage.lookup.PORT]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.stage]]\nname = \"s\"\nplugin = \"x.wasm\"\n[pipeline.stage.lookup.users]\ntable = \"u\"\nzz_unknown = 1\n"
        ),
        "[pipeline.stage.swap]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.stage]]\nname = \"s\"\nplugin = \"x.wasm\"\n[pipeline.stage.swap]\nzz_unknown = 1\n"
        ),
        "[pipeline.stage.poison]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.stage]]\nname = \"s\"\nplugin = \"x.wasm\"\n[pipeline.stage.poison]\nzz_unknown = 1\n"
        ),
        "[pipeline.stage.dedupe]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.stage]]\nname = \"s\"\nplugin = \"x.wasm\"\n[pipeline.stage.dedupe]\nkey = [\"k\"]\nevent_time = \"e\"\nretention = \"1h\"\nzz_unknown = 1\n"
        ),
        "[[pipeline.sink]]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.sink]]\nname = \"k\"\ntable = \"t2\"\nzz_unknown = 1\n"
        ),
        "[pipeline.sink.merge]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.sink]]\nname = \"k\"\ntable = \"t2\"\nmode = \"merge\"\n[pipeline.sink.merge]\non = [\"k\"]\nzz_unknown = 1\n"
        ),
        "[pipeline.sink.upsert]" => format!(
            "{BASE}[[pipeline]]\nname = \"p\"\n[pipeline.source.delta]\ntable = \"t\"\n[[pipeline.sink]]\nname = \"k\"\ntable = \"t2\"\nmode = \"upsert\"\n[pipeline.sink.upsert]\nkey = [\"k\"]\norder_by = \"o\"\nzz_unknown = 1\n"
        ),
        other => panic!(
            "docs/pipeline.md has a key table under `{other}` this test does not know; add it here"
        ),
    }
}

#[test]
fn every_documented_key_is_accepted_and_every_accepted_key_documented() {
    let sections: Vec<_> = documented()
        .into_iter()
        .filter(|(_, keys)| !keys.is_empty())
        .filter(|(name, _)| !["Dead letters", "Auditing", "Running"].contains(&name.as_str()))
        .collect();
    assert!(sections.len() >= 12, "{sections:?}");
    for (section, keys) in sections {
        let mut accepted = accepted(&with(&section));
        // Arrays of tables are read one by one, after the table holding them.
        match section.as_str() {
            "Top level" => accepted.insert("pipeline".into()),
            "[[pipeline]]" => accepted.insert("stage".into()) && accepted.insert("sink".into()),
            _ => true,
        };
        assert_eq!(
            keys, accepted,
            "docs/pipeline.md `{section}` documents the left keys; the loader accepts the right ones"
        );
    }
}
