//! `misbehave`: a test plugin that does, on request, everything a plugin must
//! not be able to get away with — spin forever, allocate past its cap, panic,
//! touch the filesystem, environment or network, return garbage — so the
//! sandbox tests can check the host contains each one and then carries on.
//!
//! It implements the generated bindings directly instead of going through
//! `weir_sdk::export!`, because the SDK never produces malformed output.
//! Each `process` call reads the `action` (and optional `arg`) of row 0 of
//! input `in` and answers on `out` with one `result` string.

#[cfg(target_arch = "wasm32")]
mod guest {
    use std::sync::Arc;
    use weir_sdk::__private::bindings::weir::plugin::types::{
        Configured, ErrorKind, Manifest, NamedStream, PluginError, Port,
    };
    use weir_sdk::__private::bindings::{__weir_export_world, Guest};
    use weir_sdk::arrow_array::cast::AsArray;
    use weir_sdk::arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use weir_sdk::arrow_schema::{DataType, Field, Schema};
    use weir_sdk::ipc;

    struct Misbehave;

    fn out_schema() -> Schema {
        Schema::new(vec![Field::new("result", DataType::Utf8, false)])
    }

    fn ports() -> (Vec<Port>, Vec<Port>) {
        let input = Port {
            name: "in".into(),
            description: "`action` and optional `arg` columns.".into(),
            schema: None,
        };
        let output = Port {
            name: "out".into(),
            description: "One `result` row.".into(),
            schema: Some(ipc::encode_schema(&out_schema()).unwrap()),
        };
        (vec![input], vec![output])
    }

    fn answer(result: String) -> Vec<NamedStream> {
        let batch = RecordBatch::try_new(
            Arc::new(out_schema()),
            vec![Arc::new(StringArray::from(vec![result])) as ArrayRef],
        )
        .unwrap();
        vec![NamedStream {
            name: "out".into(),
            ipc: ipc::encode_stream(&out_schema(), &[batch]).unwrap(),
        }]
    }

    fn error(message: String) -> PluginError {
        PluginError {
            kind: ErrorKind::BadInput,
            message,
            key: None,
            input: Some("in".into()),
            row: Some(0),
        }
    }

    fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(result: Result<T, E>) -> String {
        match result {
            Ok(value) => format!("allowed: {value:?}"),
            Err(err) => format!("denied: {err}"),
        }
    }

    fn misbehave(action: &str) {
        match action {
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hog" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("misbehave was asked to panic"),
            _ => {}
        }
    }

    impl Guest for Misbehave {
        fn manifest() -> Manifest {
            let (inputs, outputs) = ports();
            Manifest {
                name: "misbehave".into(),
                version: "0.1.0".into(),
                description: "Misbehaves on request, for sandbox tests.".into(),
                inputs,
                outputs,
                config_schema:
                    r#"{"type":"object","properties":{"on_configure":{"type":"string"}}}"#.into(),
            }
        }

        fn configure(config: String) -> Result<Configured, PluginError> {
            let config: serde_json::Value =
                serde_json::from_str(&config).map_err(|e| error(e.to_string()))?;
            if let Some(action) = config["on_configure"].as_str() {
                misbehave(action);
                if action == "reject" {
                    return Err(PluginError {
                        kind: ErrorKind::BadConfig,
                        message: "rejected on request".into(),
                        key: Some("on_configure".into()),
                        input: None,
                        row: None,
                    });
                }
            }
            let (inputs, outputs) = ports();
            Ok(Configured { inputs, outputs })
        }

        fn process(inputs: Vec<NamedStream>) -> Result<Vec<NamedStream>, PluginError> {
            let stream = inputs
                .into_iter()
                .find(|s| s.name == "in")
                .ok_or_else(|| error("no input `in`".into()))?;
            let (_, batches) = ipc::decode_stream(stream.ipc).map_err(|e| error(e.to_string()))?;
            let batch = batches.first().ok_or_else(|| error("no rows".into()))?;
            let column = |name: &str| {
                batch
                    .column_by_name(name)
                    .map(|c| c.as_string::<i32>().value(0).to_string())
            };
            let action = column("action").ok_or_else(|| error("no `action` column".into()))?;
            let arg = column("arg").unwrap_or_default();
            misbehave(&action);
            let result = match action.as_str() {
                "echo" => format!("echo {arg}"),
                "read-file" => outcome(std::fs::read(&arg).map(|bytes| bytes.len())),
                "write-file" => outcome(std::fs::write(&arg, b"escaped")),
                "list-dir" => outcome(std::fs::read_dir(&arg).map(|d| d.count())),
                "env" => outcome(std::env::var(&arg)),
                "env-count" => format!("{} variables", std::env::vars().count()),
                "connect" => outcome(std::net::TcpStream::connect(&arg).map(|_| "connected")),
                "clock-and-random" => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos();
                    let mut bytes = [0u8; 8];
                    getrandom::fill(&mut bytes).map_err(|e| error(e.to_string()))?;
                    format!("{now} {}", u64::from_le_bytes(bytes))
                }
                "log" => {
                    weir_sdk::log::info(&format!("hello from misbehave: {arg}"));
                    println!("stdout line from misbehave");
                    "logged".into()
                }
                "garbage" => {
                    return Ok(vec![NamedStream {
                        name: "out".into(),
                        ipc: b"\x00\x01 this is not arrow".to_vec(),
                    }]);
                }
                "wrong-schema" => {
                    let schema = Schema::new(vec![Field::new("result", DataType::Int64, false)]);
                    let batch = RecordBatch::try_new(
                        Arc::new(schema.clone()),
                        vec![Arc::new(Int64Array::from(vec![1])) as ArrayRef],
                    )
                    .unwrap();
                    return Ok(vec![NamedStream {
                        name: "out".into(),
                        ipc: ipc::encode_stream(&schema, &[batch]).unwrap(),
                    }]);
                }
                "duplicate-port" => {
                    let mut streams = answer("first".into());
                    streams.extend(answer("second".into()));
                    return Ok(streams);
                }
                "undeclared-port" => {
                    let mut streams = answer("x".into());
                    streams[0].name = "sideways".into();
                    return Ok(streams);
                }
                "fail" => return Err(error(format!("failing on request: {arg}"))),
                other => return Err(error(format!("unknown action `{other}`"))),
            };
            Ok(answer(result))
        }
    }

    __weir_export_world!(Misbehave with_types_in weir_sdk::__private::bindings);
}
