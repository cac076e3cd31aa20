//! `weir demo orders --serve`: after the demo's run, the orders pipelines
//! keep streaming — a producer adds 100 new order events every half second —
//! with the admin API listening, until Ctrl-C. README's operator section
//! (status, swap, shadow, rollback, metrics, deploy) is followed against it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use weir_runtime::PluginEngine;
use weir_runtime::control::Control;
use weir_runtime::demo::orders::generate;
use weir_runtime::kafka::producer;
use weir_runtime::pipeline::PreparedFile;
use weir_runtime::pipeline::model::Admin;
use weir_runtime::pipeline::spec::KafkaConnection;
use weir_runtime::run::{RunOptions, run_file_with};

/// Events the stream produces after the demo's (about 17 minutes' worth).
const STREAMED: usize = 200_000;

/// The admin settings `--serve ADDRESS` asks for, with the token from
/// `WEIR_ADMIN_TOKEN` (checked before the demo starts).
pub(super) fn settings(address: &str) -> anyhow::Result<Admin> {
    let token = std::env::var("WEIR_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "--serve needs a token for the admin API: set WEIR_ADMIN_TOKEN (e.g. export WEIR_ADMIN_TOKEN=try-me); the weir commands send it from the same variable"
            )
        })?;
    Ok(Admin {
        address: address
            .parse()
            .map_err(|_| anyhow::anyhow!("--serve {address}: not an IP:port address"))?,
        token: token.trim().to_string(),
    })
}

/// Streams `prepared` with the admin API (`settings`) until Ctrl-C; the
/// demo already produced `already` events of the generator's `seed`.
pub(super) async fn serve(
    mut prepared: PreparedFile,
    settings: Admin,
    engine: &PluginEngine,
    connection: &KafkaConnection,
    topic: &str,
    (seed, already): (u64, usize),
) -> anyhow::Result<()> {
    prepared.file.admin = Some(settings.clone());
    let control = Control::new();
    let outcome = Arc::new(std::sync::Mutex::new(None));
    let (_server, deployments) = super::pipeline_run::start_admin(
        &prepared,
        &settings,
        engine,
        &control,
        Some(("orders", outcome)),
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    super::pipeline_run::spawn_signal_watch(stop.clone());
    println!(
        "\n== streaming: 100 new events every 0.5 s, with the admin API (token from WEIR_ADMIN_TOKEN). Try `weir status` in another terminal; Ctrl-C stops."
    );
    let producing = {
        let (connection, topic, stop) = (connection.clone(), topic.to_string(), stop.clone());
        tokio::spawn(async move {
            // The same generator and seed, continued past the demo's events:
            // fresh event ids and later event times.
            let events = generate(already + STREAMED, seed);
            for chunk in events[already..].chunks(100) {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let messages: Vec<(Vec<u8>, Vec<u8>)> = chunk
                    .iter()
                    .map(|e| (e.key.clone(), e.value.clone()))
                    .collect();
                if let Err(error) = producer::produce(&connection, &topic, messages).await {
                    tracing::warn!(%error, "demo producer: cannot produce");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            tracing::info!("the demo stream has produced all its {STREAMED} events");
        })
    };
    let run = run_file_with(
        prepared,
        RunOptions { once: false },
        stop.clone(),
        &control,
        "orders",
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let _ = producing.await;
    deployments.stop_all().await;
    run?;
    Ok(())
}
