"""Checks the `profiles` topic independently of Weir.

Reads the five source tables with the Python `deltalake` package, computes
the profile every changed user should have (the consumer-facing schema in
docs/plugins.md: the users row, then accounts, education, work_experience and
tags as lists ordered by their `order_by` columns, each row without
`user_id`), reads the topic from the beginning with `confluent-kafka`, and
compares the latest message per key. Prints one JSON object:

  {"messages": N, "keys": K, "tombstones": T, "mismatches": [...],
   "mismatch_count": C, "replayed": R, "replays_differ": [...],
   "twice_in_an_epoch": [...], "missing_headers": M, "at_end": true}

A replay is a message whose (weir-epoch, weir-seq) was already seen; it must
be byte-identical (key, value, headers, partition) to the first one.

Usage: profiles_topic.py BOOTSTRAP TOPIC TABLES_DIR
"""

import json
import sys
from datetime import datetime

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, TopicPartition
from deltalake import DeltaTable

bootstrap, topic, tables = sys.argv[1:4]
LISTS = {
    "accounts": ["account_id"],
    "education": ["start_year", "school"],
    "work_experience": ["start_year", "company"],
    "tags": ["tag"],
}


def rows(name):
    return DeltaTable(f"{tables}/{name}").to_pyarrow_table().to_pylist()


def changed_keys(name):
    table = DeltaTable(f"{tables}/{name}")
    changes = pa.table(table.load_cdf(starting_version=0).read_all())
    return set(changes.column("user_id").to_pylist())


def sort_key(values):
    # Ascending, nulls last (the plugin's rule).
    return [(v is None, v) for v in values]


expected = {}
users = {r["user_id"]: r for r in rows("silver_users")}
related = {name: rows(name) for name in LISTS}
keys = changed_keys("silver_users")
for name in LISTS:
    keys |= changed_keys(name)
for key in keys:
    user = users.get(key)
    if user is None:
        expected[key] = None
        continue
    profile = dict(user)
    for name, order in LISTS.items():
        mine = [r for r in related[name] if r["user_id"] == key]
        rest = [c for c in (mine[0].keys() if mine else []) if c not in order and c != "user_id"]
        mine.sort(key=lambda r: sort_key([r[c] for c in order] + [r[c] for c in rest]))
        profile[name] = [{k: v for k, v in r.items() if k != "user_id"} for r in mine]
    expected[key] = profile


def normalize(found, want):
    """`found` (parsed JSON) with timestamps parsed where `want` has datetimes."""
    if isinstance(want, datetime) and isinstance(found, str):
        return datetime.fromisoformat(found.replace("Z", "+00:00"))
    if isinstance(want, dict) and isinstance(found, dict):
        return {k: normalize(v, want.get(k)) for k, v in found.items()}
    if isinstance(want, list) and isinstance(found, list):
        return [normalize(f, w) for f, w in zip(found, want)]
    return found


consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": "profiles-check",
    "enable.auto.commit": False,
    "enable.partition.eof": True,
})
partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
latest, seen, messages, missing_headers, replayed = {}, {}, 0, 0, 0
replays_differ, per_epoch, twice = [], {}, []
at_end = set()
deadline = datetime.now().timestamp() + 120
while len(at_end) < len(partitions) and datetime.now().timestamp() < deadline:
    message = consumer.poll(1.0)
    if message is None:
        continue
    if message.error():
        if message.error().code() == KafkaError._PARTITION_EOF:
            at_end.add(message.partition())
            continue
        raise SystemExit(f"consume failed: {message.error()}")
    at_end.discard(message.partition())
    messages += 1
    key = int(message.key().decode())
    headers = dict(message.headers() or [])
    if "weir-epoch" not in headers or "weir-seq" not in headers:
        missing_headers += 1
        continue
    ident = (headers["weir-epoch"].decode(), headers["weir-seq"].decode())
    body = (message.key(), message.value(), message.headers(), message.partition(), message.timestamp())
    if ident in seen:
        replayed += 1
        if seen[ident] != body:
            replays_differ.append(list(ident))
        continue  # a replay: dropped, as docs/exactly-once.md tells consumers to
    seen[ident] = body
    epoch_keys = per_epoch.setdefault(ident[0], set())
    if key in epoch_keys:
        twice.append([ident[0], key])
    epoch_keys.add(key)
    latest[key] = None if message.value() is None else json.loads(message.value())
consumer.close()

mismatches = []
for key in sorted(set(expected) | set(latest)):
    want = expected.get(key, "<no change>")
    found = latest.get(key, "<no message>")
    if isinstance(found, dict) and isinstance(want, dict):
        found = normalize(found, want)
    if found != want:
        mismatches.append({"key": key, "expected": str(want), "found": str(found)})

print(json.dumps({
    "messages": messages,
    "keys": len(latest),
    "tombstones": sum(1 for v in latest.values() if v is None),
    "mismatches": mismatches[:5],
    "mismatch_count": len(mismatches),
    "replayed": replayed,
    "replays_differ": replays_differ[:5],
    "twice_in_an_epoch": twice[:5],
    "missing_headers": missing_headers,
    "at_end": len(at_end) == len(partitions),
}))
