//! `${VAR}` substitution in pipeline files, so connection settings and secrets
//! come from the environment: `${NAME}` (an error if unset), `${NAME:-default}`
//! (the default if unset or empty) and `$$` for a literal `$`. Applied to every
//! string value before the file is interpreted; keys are never substituted.

/// Replaces the variables in `text`, looking each name up with `lookup`.
/// The error names the first variable that is unset or malformed.
pub fn substitute(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let close = body
                .find('}')
                .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
            let expression = &body[..close];
            let (name, default) = match expression.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expression, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`${{{expression}}}` is not a valid variable reference"
                ));
            }
            match (
                lookup(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!("environment variable {name} is not set"));
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes every string value in `value` (recursively), collecting one
/// error per failing value as `(key path, message)`.
pub fn substitute_tree(
    value: &mut toml::Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<(String, String)>,
) {
    match value {
        toml::Value::String(text) => match substitute(text, lookup) {
            Ok(replaced) => *text = replaced,
            Err(message) => errors.push((path.to_string(), message)),
        },
        toml::Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                substitute_tree(item, &format!("{path}[{index}]"), lookup, errors);
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                substitute_tree(item, &child, lookup, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "BROKERS" => Some("k1:9092".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        assert_eq!(substitute("${BROKERS}", &env).unwrap(), "k1:9092");
        assert_eq!(substitute("a-${NOPE:-x}-b", &env).unwrap(), "a-x-b");
        assert_eq!(substitute("${EMPTY:-fallback}", &env).unwrap(), "fallback");
        assert_eq!(substitute("${EMPTY}", &env).unwrap(), "");
        assert_eq!(
            substitute("cost $$5 and $x", &env).unwrap(),
            "cost $5 and $x"
        );
    }

    #[test]
    fn names_the_missing_or_malformed_variable() {
        assert_eq!(
            substitute("${KAFKA_PASSWORD}", &env).unwrap_err(),
            "environment variable KAFKA_PASSWORD is not set"
        );
        assert!(
            substitute("${BAD NAME}", &env)
                .unwrap_err()
                .contains("not a valid")
        );
        assert!(substitute("${OPEN", &env).unwrap_err().contains("closing"));
    }

    #[test]
    fn tree_substitution_collects_every_failure_with_its_key() {
        let mut value: toml::Value =
            toml::from_str("a = \"${BROKERS}\"\n[b]\nc = [\"${X1}\", \"ok\"]\nd = \"${X2}\"")
                .unwrap();
        let mut errors = Vec::new();
        substitute_tree(&mut value, "", &env, &mut errors);
        assert_eq!(value["a"].as_str(), Some("k1:9092"));
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b.c[0]", "b.d"]);
    }
}
