//! Plugin config: a JSON object handed over once, parsed into the plugin's own
//! serde type with errors that name the offending key.

use crate::PluginError;
use serde::de::DeserializeOwned;

/// Parses `json` (the text the host passed to `configure`) into `T`.
///
/// Errors are [`crate::ErrorKind::BadConfig`] and name the dotted path of the bad
/// key, e.g. `fields[2].type`. Use `#[serde(deny_unknown_fields)]` on `T` so a
/// misspelt key is reported instead of ignored.
pub fn parse_config<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    let text = if json.trim().is_empty() { "{}" } else { json };
    let deserializer = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let key = if path == "." {
            String::from("(root)")
        } else {
            path
        };
        PluginError::bad_config(key, strip_position(&err.inner().to_string()))
    })
}

/// serde_json appends " at line 1 column 42"; the key path is more useful.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Field {
        name: String,
        r#type: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        fields: Vec<Field>,
    }

    #[test]
    fn names_the_nested_bad_key() {
        let err = parse_config::<Config>(
            r#"{"fields":[{"name":"a","type":"x"},{"name":"b","typ":"y"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("fields[1].typ"));
        assert!(
            err.message.contains("unknown field `typ`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn names_a_wrong_type() {
        let err = parse_config::<Config>(r#"{"fields":[{"name":1,"type":"x"}]}"#).unwrap_err();
        assert_eq!(err.key.as_deref(), Some("fields[0].name"));
    }

    #[test]
    fn reports_invalid_json() {
        let err = parse_config::<Config>("{not json").unwrap_err();
        assert_eq!(err.kind, crate::ErrorKind::BadConfig);
    }

    #[test]
    fn empty_config_is_an_empty_object() {
        #[derive(Deserialize)]
        struct Empty {}
        assert!(parse_config::<Empty>("").is_ok());
    }
}
