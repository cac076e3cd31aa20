#!/usr/bin/env bash
# Weir quickstart: sets up the toolchain, builds `weir` and the two standard
# plugins from source, then runs the orders example through bronze (parse-json)
# and silver (filter-paid) on local files, printing row counts and the reasons
# every rejected row was rejected for.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup

target="${CARGO_TARGET_DIR:-$PWD/target}"
echo "== building weir (release; the first build takes a while)"
cargo build --release --quiet -p weir-runtime
weir="$target/release/weir"

echo "== building the plugins (wasm32-wasip2)"
build() { "$weir" plugin build "plugins/$1" --target-dir "$target/release/wasm-plugins" | awk '{print $1}'; }
parse_json=$(build parse-json)
filter_paid=$(build filter-paid)
"$weir" plugin inspect "$parse_json" | head -2

out="${WEIR_QUICKSTART_OUT:-$PWD/out/quickstart}"
echo
echo "== bronze: parse raw order events (examples/orders/orders.jsonl)"
"$weir" plugin run "$parse_json" --config @examples/orders/bronze.json \
    --input in=examples/orders/orders.jsonl --output "$out/bronze" --format arrow
echo
echo "== silver: keep PAID orders, drop duplicate event ids, flatten"
"$weir" plugin run "$filter_paid" --config @examples/orders/silver.json \
    --input in="$out/bronze/out.arrow" --output "$out/silver"
echo
echo "== silver rows ($out/silver/out.jsonl)"
cat "$out/silver/out.jsonl"
