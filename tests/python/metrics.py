"""Reads Weir's /metrics with the Prometheus project's own parser
(prometheus_client's OpenMetrics text parser, the format Weir serves and
Prometheus scrapes; it is strict: a malformed line or a missing `# EOF`
fails), so the exposition is checked by an independent implementation. Prints {family: {"type": ..., "samples": [[name, labels, value], ...]}}
as JSON. Usage: metrics.py URL TOKEN"""

import json
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families

url, token = sys.argv[1], sys.argv[2]
request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
with urllib.request.urlopen(request, timeout=30) as response:
    text = response.read().decode("utf-8")
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith("application/openmetrics-text"), content_type

families = {}
for family in text_string_to_metric_families(text):
    families[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    }
print(json.dumps(families))
