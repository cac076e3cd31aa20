//! The sandbox contains every misbehaviour of the `misbehave` test plugin —
//! timeout, out-of-memory, panic, filesystem/env/network access, garbage
//! output — reports it as a typed host error naming the plugin, and then
//! serves the next call normally.

use arrow::array::{AsArray, RecordBatch, StringArray};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_runtime::{CallContext, HostError, PluginInstance, PluginLimits};
use weir_tests::load;

fn instance(limits: PluginLimits) -> PluginInstance {
    load("misbehave")
        .instantiate("{}", limits)
        .expect("misbehave configures")
}

fn call_with(
    instance: &mut PluginInstance,
    action: &str,
    arg: &str,
    context: CallContext,
) -> Result<String, HostError> {
    let batch = RecordBatch::try_from_iter([
        ("action", Arc::new(StringArray::from(vec![action])) as _),
        ("arg", Arc::new(StringArray::from(vec![arg])) as _),
    ])
    .unwrap();
    let outputs = instance.process(&[("in".to_string(), batch)], context)?;
    let (port, out) = &outputs[0];
    assert_eq!(port, "out");
    Ok(out.column(0).as_string::<i32>().value(0).to_string())
}

fn call(instance: &mut PluginInstance, action: &str, arg: &str) -> Result<String, HostError> {
    call_with(
        instance,
        action,
        arg,
        CallContext {
            clock_nanos: 1,
            seed: 1,
        },
    )
}

fn assert_serves_next_call(instance: &mut PluginInstance) {
    assert_eq!(
        call(instance, "echo", "again").expect("the next call works"),
        "echo again"
    );
}

fn assert_names_plugin(error: &HostError) {
    let message = error.to_string();
    assert!(message.contains("plugin misbehave@0.1.0 ("), "{message}");
    let hash = &weir_runtime::cache::content_hash(
        &std::fs::read(weir_tests::wasm_path("misbehave")).unwrap(),
    )[..12];
    assert!(
        message.contains(hash),
        "{message} should name the content hash {hash}"
    );
}

#[test]
fn an_infinite_loop_times_out_within_twice_the_budget() {
    let budget = Duration::from_millis(300);
    let mut plugin = instance(PluginLimits {
        time_budget: budget,
        ..PluginLimits::default()
    });
    let started = Instant::now();
    let error = call(&mut plugin, "spin", "").unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(error, HostError::Timeout { budget: b, call: "process", .. } if b == budget),
        "{error}"
    );
    assert!(
        elapsed < budget * 2,
        "stopped after {elapsed:?}, budget {budget:?}"
    );
    assert!(error.discarded_instance());
    assert_names_plugin(&error);
    assert_serves_next_call(&mut plugin);
    assert_eq!(plugin.restarts(), 1);
}

#[test]
fn allocating_past_the_memory_cap_is_an_out_of_memory_error() {
    let cap = 64 << 20;
    let mut plugin = instance(PluginLimits {
        memory_bytes: cap,
        ..PluginLimits::default()
    });
    let error = call(&mut plugin, "hog", "").unwrap_err();
    match &error {
        HostError::OutOfMemory {
            cap: c, requested, ..
        } => assert!(*c == cap && *requested > cap, "{error}"),
        other => panic!("expected out-of-memory, got {other}"),
    }
    assert_names_plugin(&error);
    assert_serves_next_call(&mut plugin);
}

#[test]
fn a_panic_is_a_trap_that_carries_the_panic_message() {
    let mut plugin = instance(PluginLimits::default());
    let error = call(&mut plugin, "panic", "").unwrap_err();
    match &error {
        HostError::Trap {
            reason,
            call: "process",
            ..
        } => {
            assert!(reason.contains("misbehave was asked to panic"), "{reason}")
        }
        other => panic!("expected a trap, got {other}"),
    }
    assert_names_plugin(&error);
    assert_serves_next_call(&mut plugin);
}

#[test]
fn the_filesystem_is_out_of_reach() {
    let mut plugin = instance(PluginLimits::default());
    let target = std::env::temp_dir().join(format!("weir-escape-{}", std::process::id()));
    for (action, arg) in [
        ("read-file", "/etc/passwd"),
        ("read-file", "Cargo.toml"),
        ("list-dir", "/"),
        ("list-dir", "."),
        ("write-file", target.to_str().unwrap()),
    ] {
        let result = call(&mut plugin, action, arg).unwrap();
        assert!(result.starts_with("denied"), "{action} {arg}: {result}");
    }
    assert!(!target.exists(), "the plugin wrote a file on the host");
    assert_serves_next_call(&mut plugin);
}

#[test]
fn the_environment_is_empty() {
    // SAFETY: tests in this binary do not read this variable concurrently.
    unsafe { std::env::set_var("WEIR_TEST_SECRET", "hunter2") };
    let mut plugin = instance(PluginLimits::default());
    assert!(
        call(&mut plugin, "env", "WEIR_TEST_SECRET")
            .unwrap()
            .starts_with("denied")
    );
    assert!(
        call(&mut plugin, "env", "HOME")
            .unwrap()
            .starts_with("denied")
    );
    assert_eq!(call(&mut plugin, "env-count", "").unwrap(), "0 variables");
}

#[test]
fn the_network_is_out_of_reach() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let mut plugin = instance(PluginLimits::default());
    let result = call(&mut plugin, "connect", &address).unwrap();
    assert!(result.starts_with("denied"), "{result}");
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin reached the host: {accepted:?}"
    );
}

#[test]
fn garbage_output_is_an_output_validation_error() {
    let mut plugin = instance(PluginLimits::default());
    let cases = [
        ("garbage", "not a valid Arrow IPC stream"),
        (
            "wrong-schema",
            "column `result` has type Int64, expected Utf8",
        ),
        ("undeclared-port", "the port is not declared"),
        ("duplicate-port", "the port was returned twice"),
    ];
    for (action, expected) in cases {
        let error = call(&mut plugin, action, "").unwrap_err();
        match &error {
            HostError::InvalidOutput { reason, .. } => {
                assert!(reason.contains(expected), "{action}: {reason}")
            }
            other => panic!("{action}: expected an output-validation error, got {other}"),
        }
        assert!(error.discarded_instance());
        assert_names_plugin(&error);
        assert_serves_next_call(&mut plugin);
    }
    assert_eq!(plugin.restarts(), 4);
}

#[test]
fn a_typed_plugin_error_is_a_data_error_and_keeps_the_instance() {
    let mut plugin = instance(PluginLimits::default());
    let error = call(&mut plugin, "fail", "bad row").unwrap_err();
    match &error {
        HostError::Plugin { error, .. } => {
            assert_eq!(error.kind, weir_sdk::ErrorKind::BadInput);
            assert_eq!((error.input.as_deref(), error.row), (Some("in"), Some(0)));
            assert!(error.message.contains("failing on request: bad row"));
        }
        other => panic!("expected a plugin error, got {other}"),
    }
    assert!(!error.discarded_instance());
    assert_names_plugin(&error);
    assert_serves_next_call(&mut plugin);
    assert_eq!(plugin.restarts(), 0);
}

#[test]
fn clock_and_random_come_from_the_call_context() {
    let mut plugin = instance(PluginLimits::default());
    let context = CallContext {
        clock_nanos: 1_700_000_000_123_456_789,
        seed: 42,
    };
    let first = call_with(&mut plugin, "clock-and-random", "", context).unwrap();
    let replay = call_with(&mut plugin, "clock-and-random", "", context).unwrap();
    assert_eq!(
        first, replay,
        "the same context must replay the same output"
    );
    assert!(first.starts_with("1700000000123456789 "), "{first}");
    let other_seed = call_with(
        &mut plugin,
        "clock-and-random",
        "",
        CallContext {
            seed: 43,
            ..context
        },
    )
    .unwrap();
    assert_ne!(first.split(' ').nth(1), other_seed.split(' ').nth(1));
    let mut fresh = instance(PluginLimits::default());
    assert_eq!(
        call_with(&mut fresh, "clock-and-random", "", context).unwrap(),
        first,
        "a fresh instance replays too"
    );
}

#[test]
fn misbehaviour_during_configure_is_contained() {
    let plugin = load("misbehave");
    let short = PluginLimits {
        time_budget: Duration::from_millis(200),
        ..PluginLimits::default()
    };
    let error = plugin
        .instantiate(r#"{"on_configure":"spin"}"#, short)
        .err()
        .unwrap();
    assert!(
        matches!(
            error,
            HostError::Timeout {
                call: "configure",
                ..
            }
        ),
        "{error}"
    );
    let error = plugin
        .instantiate(r#"{"on_configure":"panic"}"#, short)
        .err()
        .unwrap();
    assert!(
        matches!(&error, HostError::Trap { call: "configure", reason, .. } if reason.contains("asked to panic")),
        "{error}"
    );
    let error = plugin
        .instantiate(r#"{"on_configure":"reject"}"#, short)
        .err()
        .unwrap();
    match &error {
        HostError::Plugin { error, .. } => assert_eq!(error.key.as_deref(), Some("on_configure")),
        other => panic!("expected bad-config, got {other}"),
    }
    assert!(
        plugin.instantiate("{}", short).is_ok(),
        "the plugin still instantiates afterwards"
    );
}

#[test]
fn many_failures_do_not_exhaust_the_instance_pool() {
    let mut plugin = instance(PluginLimits {
        time_budget: Duration::from_millis(50),
        ..PluginLimits::default()
    });
    for _ in 0..80 {
        assert!(call(&mut plugin, "panic", "").is_err());
    }
    assert_serves_next_call(&mut plugin);
}

/// The SDK's checks on the plugin side of the boundary, as they run in wasm:
/// inputs that are not Arrow IPC, miss a declared column or name no port are
/// typed bad-input errors naming the input, and the instance stays alive.
#[test]
fn the_sdk_rejects_bad_inputs_inside_the_sandbox() {
    let config = r#"{"fields": [{"name": "id", "type": "string"}]}"#;
    let mut parser = load("parse-json")
        .instantiate(config, PluginLimits::default())
        .unwrap();
    let context = CallContext::default();
    let bad_input = |error: HostError| match error {
        HostError::Plugin { error, .. } => {
            assert_eq!(error.kind, weir_sdk::ErrorKind::BadInput, "{error}");
            (error.input.unwrap_or_default(), error.message)
        }
        other => panic!("expected a bad-input error, got {other}"),
    };

    let error = parser
        .process_ipc(vec![("in".into(), b"junk".to_vec())], context)
        .unwrap_err();
    let (input, message) = bad_input(error);
    assert_eq!(input, "in");
    assert!(
        message.starts_with("not a valid Arrow IPC stream"),
        "{message}"
    );

    let wrong_column =
        RecordBatch::try_from_iter([("payload", Arc::new(StringArray::from(vec!["{}"])) as _)])
            .unwrap();
    let (input, message) = bad_input(
        parser
            .process(&[("in".into(), wrong_column.clone())], context)
            .unwrap_err(),
    );
    assert_eq!(input, "in");
    assert_eq!(message, "column `value` (Binary) is missing");

    let (input, message) = bad_input(
        parser
            .process(&[("orders".into(), wrong_column)], context)
            .unwrap_err(),
    );
    assert_eq!(input, "orders");
    assert!(
        message.contains("no input port called `orders`"),
        "{message}"
    );

    let good = RecordBatch::try_from_iter([(
        "value",
        Arc::new(arrow::array::BinaryArray::from_vec(vec![br#"{"id":"a"}"#])) as _,
    )])
    .unwrap();
    let outputs = parser
        .process(&[("in".into(), good)], context)
        .expect("the instance still works");
    assert_eq!(outputs[0].1.num_rows(), 1);
    assert_eq!(parser.restarts(), 0);
}
