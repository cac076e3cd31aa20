#!/usr/bin/env bash
# Weir quickstart: sets up the toolchain and the local test broker (tansu),
# builds `weir` and the standard plugins from source, then runs two scenarios
# end to end. Orders: realistic order events go to Kafka, the three pipelines
# of examples/orders/pipeline.toml take them through bronze, silver and gold
# Delta tables (bad events land in the dead-letter table), and the gold
# tables are printed. Profiles: user change events go to Kafka, become an
# SCD type 1 users table, and every changed user's profile (joined from five
# tables' change feeds) is published to the `profiles` topic; a few are
# printed. No Kafka installation needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup

target="${CARGO_TARGET_DIR:-$PWD/target}"
echo "== building weir (release; the first build takes a while)"
cargo build --release --quiet -p weir-runtime
weir="$target/release/weir"

echo "== building the plugins (wasm32-wasip2)"
plugins="$target/release/wasm-plugins"
for plugin in parse-json filter-paid aggregate route cdc-upsert denormalize-profile; do
    "$weir" plugin build "plugins/$plugin" --target-dir "$plugins" | awk '{print "   " $1}'
done
export WEIR_PLUGINS="$plugins/wasm32-wasip2/release"

data="${WEIR_QUICKSTART_OUT:-$PWD/out/orders}"
rm -rf "$data"
echo
echo "== orders: Kafka → bronze → silver → gold (tables in $data)"
"$weir" demo orders --count "${WEIR_DEMO_COUNT:-20000}" --data "$data"

profiles="${WEIR_QUICKSTART_PROFILES_OUT:-$PWD/out/profiles}"
echo
echo "== profiles: Kafka → silver users (SCD1) → profiles from five tables' changes → Kafka (tables in $profiles)"
"$weir" demo profiles --data "$profiles"
