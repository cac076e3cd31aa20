//! librdkafka client configuration from a pipeline's Kafka connection. Secret
//! properties (passwords, tokens, JAAS configs) are passed to librdkafka but
//! never logged; [`describe`] shows the settings with them masked.

use crate::pipeline::spec::{KafkaConnection, is_secret_property};
use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;

/// A consumer config: the connection's brokers and properties plus Weir's
/// fixed settings (no auto-commit, no auto offset store: positions are owned
/// by the sinks' Delta commits).
pub fn consumer_config(
    connection: &KafkaConnection,
    group_id: Option<&str>,
    reset: &str,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &connection.brokers)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset)
        .set("enable.partition.eof", "false")
        .set("socket.timeout.ms", millis(connection.connect_timeout))
        .set("client.id", "weir");
    match group_id {
        Some(group) => config.set("group.id", group),
        // librdkafka requires a group id even for assign()-only consumers that never commit.
        None => config.set("group.id", "weir-replay"),
    };
    for (key, value) in &connection.properties {
        config.set(key, value);
    }
    config.set_log_level(RDKafkaLogLevel::Warning);
    config
}

fn millis(duration: std::time::Duration) -> String {
    duration.as_millis().clamp(10, i32::MAX as u128).to_string()
}

/// The settings as `key=value` pairs with secrets masked, for logs.
pub fn describe(connection: &KafkaConnection) -> String {
    let mut parts = vec![format!("bootstrap.servers={}", connection.brokers)];
    for (key, value) in &connection.properties {
        let shown = if is_secret_property(key) {
            "***"
        } else {
            value.as_str()
        };
        parts.push(format!("{key}={shown}"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn secrets_are_masked_in_descriptions_but_passed_to_the_client() {
        let connection = KafkaConnection {
            brokers: "k:9092".into(),
            properties: BTreeMap::from([
                ("sasl.username".to_string(), "svc".to_string()),
                ("sasl.password".to_string(), "hunter2".to_string()),
            ]),
            connect_timeout: std::time::Duration::from_secs(5),
        };
        let text = describe(&connection);
        assert!(text.contains("sasl.username=svc"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!format!("{connection:?}").contains("hunter2"));
        let config = consumer_config(&connection, Some("g"), "earliest");
        assert_eq!(config.get("sasl.password"), Some("hunter2"));
        assert_eq!(config.get("enable.auto.commit"), Some("false"));
    }
}
