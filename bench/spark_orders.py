#!/usr/bin/env python3
"""The Spark side of Weir's orders benchmark.

    python3 bench/spark_orders.py --input DIR --output DIR [--json]

Runs the orders scenario of examples/orders/pipeline.toml as one PySpark batch
job on `local[2]`: every `*.jsonl` file of DIR (or every `*.json` file when
there is no `*.jsonl`) read as text, one event per line ->

  bronze  `from_json` with the schema of the parse-json stage (bronze.json);
          lines that do not parse or do not fit go to dead letters
  silver  the filter-paid stage (silver.json): `keep` statuses only (exact,
          case-sensitive), `dropDuplicates` on the dedupe key, nested fields
          flattened
  gold    the aggregate stages of the gold pipeline (sum/count/min/max of a
          measure expression per group)

and writes bronze, dead_letters, silver and gold_<stage> as Parquet under
--output. It reports the wall time of the transform (from reading the input to
the last table written and the gold rows collected), separately from JVM and
SparkSession startup and from a warm-up run on the first 2000 lines,
records/s, the JVM's peak RSS, and the gold tables with every float written
exactly (shortest round-trip repr) so they can be compared with Weir's.

Semantics follow Weir's, not Spark's defaults, wherever they differ; see
bench/README.md ("Semantic adjustments") and the ADJUSTMENT comments below.
The scheme mirrors parse-json's own: a fast path (Spark's `from_json`) decides
the rows it can vouch for, and every other line is re-read by an exact
re-implementation of parse-json's rules in Python (`weir_parse`), which
decides every rejection.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PIPELINE = os.path.join(HERE, "..", "examples", "orders", "pipeline.toml")
CORRUPT = "_corrupt_record"


class Unsupported(Exception):
    """A pipeline or config feature this benchmark does not reproduce."""


# ───────────────────────── the declared schema (parse-json config) ─────────────────────────

TYPE_NAMES = {
    "string": "string",
    "int32": "int32", "int": "int32", "integer": "int32",
    "int64": "int64", "long": "int64", "bigint": "int64",
    "float64": "float64", "double": "float64", "float": "float64",
    "boolean": "boolean", "bool": "boolean",
    "timestamp": "timestamp",
    "date": "date",
    "struct": "struct",
    "list": "list", "array": "list",
}


class Spec:
    """One declared field (or a list's `items`, which has no name)."""

    __slots__ = ("name", "type", "required", "fields", "items", "index")

    def __init__(self, raw: dict, path: str):
        self.name = raw.get("name")
        kind = raw.get("type")
        if kind not in TYPE_NAMES:
            raise Unsupported(f"{path}.type: unknown type {kind!r}")
        self.type = TYPE_NAMES[kind]
        self.required = bool(raw.get("required", False))
        self.fields = None
        self.items = None
        self.index = None
        if self.type == "date":
            raise Unsupported(f"{path}: `date` fields are not reproduced by the Spark benchmark")
        if self.type == "timestamp" and raw.get("format", "iso8601") != "iso8601":
            raise Unsupported(f"{path}.format: only `iso8601` timestamps are reproduced by the Spark benchmark")
        if self.type == "struct":
            self.fields = [Spec(f, f"{path}.fields[{i}]") for i, f in enumerate(raw.get("fields", []))]
            self.index = {f.name: i for i, f in enumerate(self.fields)}
        if self.type == "list":
            self.items = Spec(raw["items"], f"{path}.items")

    def has_timestamp(self) -> bool:
        if self.type == "timestamp":
            return True
        if self.type == "struct":
            return any(f.has_timestamp() for f in self.fields)
        if self.type == "list":
            return self.items.has_timestamp()
        return False


def root_spec(config: dict) -> Spec:
    if config.get("unknown_fields", "ignore") != "ignore":
        raise Unsupported("parse-json `unknown_fields = \"reject\"` is not reproduced by the Spark benchmark")
    # The row itself is required: a line that is not an object is rejected.
    return Spec({"type": "struct", "required": True, "fields": config["fields"]}, "fields")


# ───────────────────── parse-json's rules, exactly, for the rows Spark cannot vouch for ─────────────────────
#
# Everything from here to `weir_parse` is plain Python with no Spark import: it
# runs inside the Python UDF on the (few) lines the fast path hands over, and
# decides every rejection, as parse-json's serde-based parser does. It follows
# plugins/parse-json (convert.rs, number.rs, rfc3339.rs), serde_json 1.0.154
# (with float_roundtrip, without arbitrary_precision) and chrono 0.4.45.

class _Num(str):
    """A JSON number, as its literal text."""
    __slots__ = ()


class _Obj(list):
    """A JSON object as its (key, value) pairs in order, duplicates kept."""
    __slots__ = ()


class _Reject(Exception):
    def __init__(self, field, reason):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _no_constant(name):
    raise ValueError(f"`{name}` is not a JSON value")


def _decoder():
    """object_pairs_hook keeps duplicate keys (each occurrence is checked, the
    last wins); numbers stay literals (typed per field below, never through
    Python's float); NaN/Infinity are not JSON. Made where it is used (a
    decoder does not pickle into the UDF)."""
    decoder = _DECODERS.get("json")
    if decoder is None:
        decoder = _DECODERS["json"] = json.JSONDecoder(
            object_pairs_hook=_Obj, parse_float=_Num, parse_int=_Num,
            parse_constant=_no_constant, strict=True)
    return decoder


_DECODERS = {}

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_I128_MAX = (1 << 127) - 1
# Rust's char::is_whitespace (Unicode White_Space), which chrono's parser trims.
_RUST_WS = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007" \
           "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _sat64(v: int) -> int:
    return max(_I64_MIN, min(_I64_MAX, v))


def _kind(v) -> str:
    if v is None:
        return "null"
    if type(v) is bool:
        return "a boolean"
    if type(v) is _Num:
        return "a number"
    if type(v) is str:
        return "a string"
    if type(v) is _Obj:
        return "an object"
    return "an array"


def _valid_text(s: str) -> bool:
    """serde_json rejects lone surrogates (`\\ud800`) and invalid UTF-8 in every
    string it parses (keys, declared string values), not in skipped values.
    Invalid input bytes arrive here as surrogate escapes, so one test covers both."""
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _integer_value(lit: str):
    """number.rs `integer_value`: ('exact', n) | ('too_large', None) | ('fraction', None),
    from the digits as written (3.0, 1e1 and 30e-1 are whole numbers)."""
    negative = lit.startswith("-")
    rest = lit[1:] if negative else lit
    at = max(rest.find("e"), rest.find("E"))
    mantissa, exponent_text = (rest[:at], rest[at + 1:]) if at >= 0 else (rest, "")
    whole, _, fraction = mantissa.partition(".")
    exponent = 0
    if exponent_text:
        sign = -1 if exponent_text[0] == "-" else 1
        digits = exponent_text.lstrip("+-")
        exponent = _sat64(sign * int(digits)) if len(digits) < 25 else (_I64_MIN if sign < 0 else _I64_MAX)
    digits = whole + fraction
    nonzero = [i for i, d in enumerate(digits) if d != "0"]
    if not nonzero:
        return ("exact", 0)
    first, last = nonzero[0], nonzero[-1]
    significant = digits[first:last + 1]
    trailing = len(digits) - 1 - last
    scale = _sat64(_sat64(exponent - len(fraction)) + trailing)
    if scale < 0:
        return ("fraction", None)
    if _sat64(len(significant) + scale) > 39:
        return ("too_large", None)
    value = int(significant) * 10 ** scale
    if value > _I128_MAX:
        return ("too_large", None)
    return ("exact", -value if negative else value)


class _OutOfRange(Exception):
    pass


def _serde_f64(lit: str) -> float:
    """The double serde_json 1.0.154 with `float_roundtrip` (Weir's build)
    reads from a JSON number literal: the correctly rounded one, as Python's
    float() and Java's Double.parseDouble; a literal beyond the largest
    double is out of range (an underflow is 0)."""
    value = float(lit)
    if value in (float("inf"), float("-inf")):
        raise _OutOfRange()
    return value


def _days_from_civil(y: int, m: int, d: int) -> int:
    y = y - 1 if m <= 2 else y
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _micros(y, mo, d, h, mi, s, nano, offset_seconds):
    # chrono: timestamp() * 10^6 + nanosecond / 1000 (a leap second's nano is >= 10^9)
    seconds = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset_seconds
    return seconds * 1_000_000 + nano // 1000


def _valid_time(h, mi, s, nano) -> bool:  # NaiveTime::from_hms_nano_opt
    return h < 24 and mi < 60 and s < 60 and nano < 2_000_000_000 and (nano < 1_000_000_000 or s == 59)


def _nanosecond(b: bytes):
    """chrono scan::nanosecond: 1-9 digits, later digits skipped; None if no digit."""
    k = 0
    while k < len(b) and k < 9 and 48 <= b[k] <= 57:
        k += 1
    if k == 0:
        return None
    v = int(b[:k]) * 10 ** (9 - k)
    while k < len(b) and 48 <= b[k] <= 57:
        k += 1
    return v, b[k:]


def _rfc3339(text: str):
    """chrono 0.4.45 DateTime::parse_from_rfc3339 -> micros or None."""
    b = text.encode("utf-8")
    if len(b) < 19:
        return None
    dig = lambda k: 48 <= b[k] <= 57  # noqa: E731
    if not all(dig(k) for k in (0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18)):
        return None
    if b[4:5] != b"-" or b[7:8] != b"-" or b[10:11] not in (b"t", b"T", b" ") or b[13:14] != b":" or b[16:17] != b":":
        return None
    year, month, day = int(b[0:4]), int(b[5:7]), int(b[8:10])
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)):
        return None
    hour, minute, sec = int(b[11:13]), int(b[14:16]), int(b[17:19])
    nano = 0
    if sec == 60:  # RFC 3339 allows leap seconds
        sec, nano = 59, 1_000_000_000
    rest = b[19:]
    if rest[:1] == b".":
        parsed = _nanosecond(rest[1:])
        if parsed is None:
            return None
        nano += parsed[0]
        rest = parsed[1]
    if not _valid_time(hour, minute, sec, nano):
        return None
    if rest[:1] in (b"Z", b"z"):
        offset, rest = 0, rest[1:]
    else:
        if rest[:1] == b"+":
            negative, rest = False, rest[1:]
        elif rest[:1] == b"-":
            negative, rest = True, rest[1:]
        elif rest[:3] == "\u2212".encode():
            negative, rest = True, rest[3:]
        else:
            return None
        if len(rest) < 2 or not (48 <= rest[0] <= 57 and 48 <= rest[1] <= 57):
            return None
        hours = int(rest[:2])
        rest = rest[2:]
        if rest[:1] != b":":
            return None
        rest = rest[1:]
        if len(rest) < 2 or not (48 <= rest[0] <= 53 and 48 <= rest[1] <= 57):
            return None
        minutes = int(rest[:2])
        rest = rest[2:]
        offset = hours * 3600 + minutes * 60
        offset = -offset if negative else offset
        if not -86400 < offset < 86400:
            return None
    if rest:
        return None
    return _micros(year, month, day, hour, minute, sec, nano, offset)


def _strftime_naive(text: str, separator: str):
    """chrono 0.4.45 NaiveDateTime::parse_from_str(text, "%Y-%m-%d<sep>%H:%M:%S%.f")
    with <sep> the literal `T` or a space (which matches any run of whitespace,
    even none); numbers skip leading whitespace and take 1-2 digits (the year 1-4,
    or any number of digits after an explicit sign). -> micros or None."""
    s = text

    def number(lo, hi):
        nonlocal s
        k = 0
        while k < len(s) and k < hi and "0" <= s[k] <= "9":
            k += 1
        if k < lo:
            return None
        v = int(s[:k])
        s = s[k:]
        return v

    def field(hi):
        nonlocal s
        s = s.lstrip(_RUST_WS)
        return number(1, hi)

    def literal(c):
        nonlocal s
        if not s.startswith(c):
            return False
        s = s[len(c):]
        return True

    s = s.lstrip(_RUST_WS)
    if s.startswith("-") or s.startswith("+"):
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
        year = number(1, 10 ** 9)
        if year is None:
            return None
        year *= sign
    else:
        year = number(1, 4)
        if year is None:
            return None
    if not -(1 << 31) <= year < (1 << 31):
        return None
    if not literal("-"):
        return None
    month = field(2)
    if month is None or not 1 <= month <= 12 or not literal("-"):
        return None
    day = field(2)
    if day is None or not 1 <= day <= 31:
        return None
    if separator == "T":
        if not literal("T"):
            return None
    else:
        s = s.lstrip(_RUST_WS)
    hour = field(2)
    if hour is None or hour > 23 or not literal(":"):
        return None
    minute = field(2)
    if minute is None or minute > 59 or not literal(":"):
        return None
    second = field(2)
    if second is None or second > 60:
        return None
    nano = 0
    if s.startswith("."):
        k = 1
        while k < len(s) and k <= 9 and "0" <= s[k] <= "9":
            k += 1
        if k == 1:
            return None
        nano = int(s[1:k]) * 10 ** (10 - k)
        while k < len(s) and "0" <= s[k] <= "9":
            k += 1
        s = s[k:]
    if s:
        return None
    if not -262144 <= year <= 262143 or day > _days_in_month(year, month):
        return None
    if second == 60:
        second, nano = 59, nano + 1_000_000_000
    if not _valid_time(hour, minute, second, nano):
        return None
    return _micros(year, month, day, hour, minute, second, nano, 0)


def _iso8601(text: str):
    """parse-json's `iso8601`: RFC 3339 (T, t or space; Z or an offset), else the
    same text without an offset read as UTC. (Its inline fast reader agrees with
    chrono wherever it answers, so chrono's rules are the whole story.)"""
    micros = _rfc3339(text)
    if micros is None:
        micros = _strftime_naive(text, "T")
    if micros is None:
        micros = _strftime_naive(text, " ")
    return micros


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _value(v, spec: Spec, path: str):
    """One declared value -> its column value (timestamps as µs), or _Reject."""
    if v is None:
        return None
    t = spec.type
    if t == "string":
        if type(v) is str:
            if not _valid_text(v):
                raise _Reject(None, "invalid JSON: invalid unicode in a string (lone surrogate or invalid UTF-8)")
            return v
        raise _Reject(path, f"field `{path}`: expected a string, found {_kind(v)}")
    if t in ("int32", "int64"):
        bits = 32 if t == "int32" else 64
        if type(v) is not _Num:
            raise _Reject(path, f"field `{path}`: expected a {bits}-bit integer, found {_kind(v)}")
        kind, n = _integer_value(v)
        if kind == "exact" and -(1 << (bits - 1)) <= n < (1 << (bits - 1)):
            return n
        if kind == "fraction":
            raise _Reject(path, f"field `{path}`: {v} is not a {bits}-bit integer")
        raise _Reject(path, f"field `{path}`: {v} does not fit a {bits}-bit integer")
    if t == "float64":
        if type(v) is not _Num:
            raise _Reject(path, f"field `{path}`: expected a number, found {_kind(v)}")
        try:
            return _serde_f64(v)
        except _OutOfRange:
            raise _Reject(None, "invalid JSON: number out of range") from None
    if t == "boolean":
        if type(v) is bool:
            return v
        raise _Reject(path, f"field `{path}`: expected true or false, found {_kind(v)}")
    if t == "timestamp":
        if type(v) is not str:
            raise _Reject(path, f"field `{path}`: expected a timestamp string, found {_kind(v)}")
        if not _valid_text(v):
            raise _Reject(None, "invalid JSON: invalid unicode in a string (lone surrogate or invalid UTF-8)")
        micros = _iso8601(v)
        if micros is None:
            raise _Reject(path, f"field `{path}`: `{v}` is not an ISO 8601 timestamp")
        return micros
    if t == "struct":
        if type(v) is not _Obj:
            raise _Reject(path, f"field `{path}`: expected an object, found {_kind(v)}")
        return _object(v, spec, path)
    # list
    if type(v) is not list:
        raise _Reject(path, f"field `{path}`: expected an array, found {_kind(v)}")
    out = []
    for k, item in enumerate(v):
        item_path = f"{path}[{k}]"
        value = _value(item, spec.items, item_path)
        if value is None and spec.items.required:
            raise _Reject(item_path, f"required field `{item_path}` is null")
        out.append(value)
    return out


_MISSING = object()


def _object(pairs: _Obj, spec: Spec, path: str):
    values = [_MISSING] * len(spec.fields)
    for key, v in pairs:
        if not _valid_text(key):
            raise _Reject(None, "invalid JSON: invalid unicode in an object key (lone surrogate or invalid UTF-8)")
        i = spec.index.get(key)
        if i is None:
            continue  # undeclared keys are ignored, their values unchecked
        field = spec.fields[i]
        field_path = _join(path, field.name)
        # A repeated key: every occurrence is checked, the last one wins.
        value = _value(v, field, field_path)
        if value is None and field.required:
            raise _Reject(field_path, f"required field `{field_path}` is null")
        values[i] = value
    for i, field in enumerate(spec.fields):
        if values[i] is _MISSING:
            if field.required:
                field_path = _join(path, field.name)
                raise _Reject(field_path, f"required field `{field_path}` is missing")
            values[i] = None
    return tuple(values)


def weir_parse(raw: bytes, spec: Spec):
    """parse-json's verdict on one message: (row, None, None) with timestamps as
    µs since the epoch, or (None, field, reason)."""
    text = bytes(raw).decode("utf-8", "surrogateescape")
    try:
        try:
            doc = _decoder().decode(text)
        except RecursionError:
            raise _Reject(None, "invalid JSON: recursion limit exceeded") from None
        except ValueError as e:
            raise _Reject(None, f"invalid JSON: {e}") from None
        if type(doc) is not _Obj:
            raise _Reject(None, f"expected a JSON object, found {_kind(doc)}")
        return _object(doc, spec, ""), None, None
    except _Reject as r:
        return None, r.field, r.reason


# ───────────────────────────── Spark ─────────────────────────────

def spark_types(spec: Spec, mode: str):
    """The Spark type of a declared value. mode "parse": what from_json reads
    (timestamps as text, converted afterwards); "udf": what the exact parser
    returns (timestamps as µs); "out": the bronze column type."""
    from pyspark.sql import types as T
    t = spec.type
    if t == "string":
        return T.StringType()
    if t == "int32":
        return T.IntegerType()
    if t == "int64":
        return T.LongType()
    if t == "float64":
        return T.DoubleType()
    if t == "boolean":
        return T.BooleanType()
    if t == "timestamp":
        return {"parse": T.StringType(), "udf": T.LongType(), "out": T.TimestampType()}[mode]
    if t == "struct":
        return T.StructType([T.StructField(f.name, spark_types(f, mode), True) for f in spec.fields])
    return T.ArrayType(spark_types(spec.items, mode), True)


# A timestamp the fast path converts itself: the RFC 3339 shape almost every
# event carries, with at most 6 fraction digits (Spark keeps µs). Anything else
# (space or lower-case separators, 7-9 digits, no offset, leap seconds...) goes
# to the exact parser.
TS_FAST = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"


def fast_ok(c, spec: Spec):
    """True where Spark's reading of value `c` is exactly parse-json's (else the
    line goes to the exact parser). Never null."""
    from pyspark.sql import functions as F
    t = spec.type
    if t == "string":
        # ADJUSTMENT: from_json turns any JSON value into a string (5 -> "5",
        # true -> "true", {..} -> its JSON text); parse-json rejects
        # non-strings. A converted value starts with a digit, `-`, `{` or `[`,
        # or is true/false: such values (and the rare real strings that look
        # like them) are re-read exactly.
        first = F.ascii(c)
        inner = ~(((first >= 48) & (first <= 57)) | first.isin(45, 91, 123) | c.isin("true", "false"))
    elif t == "float64":
        # ADJUSTMENT: 1e400 is Infinity to Jackson but "number out of range" to
        # serde_json, and -0 is 0.0 to Spark but -0.0 to serde_json: both re-read.
        inner = ~F.isnan(c) & (F.abs(c) != F.lit(float("inf"))) & (c != F.lit(0.0))
    elif t == "timestamp":
        # ADJUSTMENT: read as text, then converted (Spark's own TimestampType
        # takes JSON numbers as epoch seconds and dates without a time, and
        # reads an offset-less time in the session time zone).
        inner = c.rlike(TS_FAST) & c.try_cast("timestamp").isNotNull()
    elif t == "struct":
        inner = F.lit(True)
        for f in spec.fields:
            inner = inner & fast_ok(c.getField(f.name), f)
    elif t == "list":
        inner = F.forall(c, lambda x: fast_ok(x, spec.items))
    else:  # int32, int64, boolean: from_json takes only int tokens in range / true, false
        inner = F.lit(True)
    # ADJUSTMENT: from_json leaves a missing or null required field null;
    # parse-json rejects the row.
    if spec.required:
        return F.coalesce(c.isNotNull() & inner, F.lit(False))
    return F.coalesce(c.isNull() | inner, F.lit(False))


def fast_value(c, spec: Spec):
    """The bronze value from from_json's reading (timestamps converted)."""
    from pyspark.sql import functions as F
    if not spec.has_timestamp():
        return c
    if spec.type == "timestamp":
        return c.try_cast("timestamp")
    if spec.type == "struct":
        return F.when(c.isNull(), F.lit(None)).otherwise(
            F.struct(*[fast_value(c.getField(f.name), f).alias(f.name) for f in spec.fields]))
    return F.transform(c, lambda x: fast_value(x, spec.items))


def udf_value(c, spec: Spec):
    """The bronze value from the exact parser's row (timestamps from µs)."""
    from pyspark.sql import functions as F
    if not spec.has_timestamp():
        return c
    if spec.type == "timestamp":
        return F.timestamp_micros(c)
    if spec.type == "struct":
        return F.when(c.isNull(), F.lit(None)).otherwise(
            F.struct(*[udf_value(c.getField(f.name), f).alias(f.name) for f in spec.fields]))
    return F.transform(c, lambda x: udf_value(x, spec.items))


# ───────────────────────────── aggregate expressions ─────────────────────────────

def _agg_tokens(text: str):
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "+-*/()":
            tokens.append(c)
            i += 1
        elif c.isascii() and (c.isalnum() or c in "_."):
            j = i
            while j < len(text) and text[j].isascii() and (text[j].isalnum() or text[j] in "_."):
                j += 1
            tokens.append(text[i:j])
            i = j
        else:
            raise Unsupported(f"unexpected character `{c}` in `{text}`")
    return tokens


def measure(text: str, schema):
    """aggregate's measure expression as a Spark column, evaluated as Weir does:
    integer columns and literals in checked 64-bit integers (ANSI mode overflows
    with an error, as Weir does), anything that meets a float or `/` in doubles."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    tokens = _agg_tokens(text)
    at = 0

    def peek():
        return tokens[at] if at < len(tokens) else None

    def column_type(name):
        dt = schema
        for part in name.split("."):
            dt = dt[part].dataType
        return dt

    def as_double(e):
        col, is_int = e
        return col.cast("double") if is_int else col

    def binary(a, op, b):
        if a[1] and b[1] and op != "/":
            ops = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y}
            return ops[op](a[0], b[0]), True
        x, y = as_double(a), as_double(b)
        # Note: Weir's float division by zero gives ±inf/NaN; Spark's ANSI mode
        # raises DIVIDE_BY_ZERO (no `/` in the orders pipeline).
        ops = {"+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y, "/": lambda x, y: x / y}
        return ops[op](x, y), False

    def total():
        nonlocal at
        left = product()
        while peek() in ("+", "-"):
            op = tokens[at]
            at += 1
            left = binary(left, op, product())
        return left

    def product():
        nonlocal at
        left = unary()
        while peek() in ("*", "/"):
            op = tokens[at]
            at += 1
            left = binary(left, op, unary())
        return left

    def unary():
        nonlocal at
        token = peek()
        if token is None:
            raise Unsupported(f"`{text}` ends too early")
        at += 1
        if token == "-":
            col, is_int = unary()
            return -col, is_int
        if token == "(":
            inner = total()
            if peek() != ")":
                raise Unsupported(f"a `(` is not closed in `{text}`")
            at += 1
            return inner
        if token[0].isdigit():
            if any(ch in token for ch in ".eE"):
                return F.lit(float(token)).cast("double"), False
            return F.lit(int(token)).cast("bigint"), True
        dt = column_type(token)
        is_int = isinstance(dt, (T.ByteType, T.ShortType, T.IntegerType, T.LongType))
        if not is_int and not isinstance(dt, (T.FloatType, T.DoubleType)):
            raise Unsupported(f"`{token}` in `{text}` is not numeric")
        return (F.col(token).cast("bigint"), True) if is_int else (F.col(token).cast("double"), False)

    result = total()
    if at != len(tokens):
        raise Unsupported(f"unexpected `{tokens[at]}` in `{text}`")
    return result


# ───────────────────────────── the pipeline file ─────────────────────────────

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(text: str) -> str:
    return _ENV.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text)


def load_scenario(path: str):
    if tomllib is None:
        raise Unsupported("reading the pipeline file needs Python 3.11+ (tomllib)")
    with open(path, "rb") as fh:
        doc = tomllib.load(fh)
    base = os.path.dirname(os.path.abspath(path))

    def config_of(stage):
        if "config_file" in stage:
            file = _expand(stage["config_file"])
            with open(file if os.path.isabs(file) else os.path.join(base, file)) as fh:
                return json.load(fh)
        return stage.get("config", {})

    parse = filter_paid = dedupe = None
    aggregates = []
    for pipeline in doc.get("pipeline", []):
        for stage in pipeline.get("stage", []):
            plugin = os.path.basename(_expand(stage.get("plugin", "")))
            if plugin == "parse_json.wasm":
                parse = config_of(stage)
            elif plugin == "filter_paid.wasm":
                filter_paid = config_of(stage)
                dedupe = stage.get("dedupe")
            elif plugin == "aggregate.wasm":
                aggregates.append((stage["name"], config_of(stage)))
    if parse is None or filter_paid is None or not aggregates:
        raise Unsupported(f"{path}: expected a parse_json, a filter_paid and aggregate stages")
    for name, config in aggregates:
        if config.get("window"):
            raise Unsupported(f"aggregate `{name}`: windows are not reproduced by the Spark benchmark")
    return parse, filter_paid, dedupe, aggregates


# ───────────────────────────── running it ─────────────────────────────

def java_major(java: str):
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    m = re.search(r'version "([^"]+)"', out.stderr + out.stdout)
    if not m:
        return None, None
    version = m.group(1)
    parts = version.split(".")
    major = int(parts[1]) if parts[0] == "1" else int(re.match(r"\d+", parts[0]).group(0))
    return major, version


def setup_java(requested: str | None):
    """Sets JAVA_HOME and returns the Java version: --java-home as given, else
    the first Java 17 (what this benchmark is specified for) among $JAVA_HOME,
    `java` on the PATH and /usr/lib/jvm/*; a Java 21 (Spark 4 runs on it too)
    only if there is no 17."""
    if requested:
        major, version = java_major(os.path.join(requested, "bin", "java"))
        if major is None:
            raise Unsupported(f"--java-home {requested}: no working bin/java there")
        os.environ["JAVA_HOME"] = requested
        return version
    homes = []
    if os.environ.get("JAVA_HOME"):
        homes.append(os.environ["JAVA_HOME"])
    on_path = shutil.which("java")
    if on_path:
        homes.append(os.path.dirname(os.path.dirname(os.path.realpath(on_path))))
    homes += sorted(glob.glob("/usr/lib/jvm/*")) + sorted(glob.glob("/Library/Java/JavaVirtualMachines/*/Contents/Home"))
    fallback = None
    for home in homes:
        java = os.path.join(home, "bin", "java")
        if not os.path.isfile(java):
            continue
        major, version = java_major(java)
        if major == 17:
            os.environ["JAVA_HOME"] = home
            return version
        if major == 21 and fallback is None:
            fallback = (home, version)
    if fallback is None:
        raise Unsupported("no Java 17 found: install one (e.g. `apt-get install openjdk-17-jre-headless`) "
                          "or pass --java-home")
    os.environ["JAVA_HOME"] = fallback[0]
    return fallback[1]


def input_files(path: str):
    if os.path.isfile(path):
        return [os.path.abspath(path)]
    if not os.path.isdir(path):
        raise Unsupported(f"--input {path}: no such file or directory")
    files = sorted(glob.glob(os.path.join(path, "*.jsonl"))) or sorted(glob.glob(os.path.join(path, "*.json")))
    if not files:
        raise Unsupported(f"--input {path}: no *.jsonl or *.json file")
    return [os.path.abspath(f) for f in files]


def peak_rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def exact(v):
    """A gold value for JSON: floats as their shortest round-trip repr (parse it
    as an f64 to get the identical double), integers and strings as they are."""
    if isinstance(v, float):
        return repr(v)
    return v


def warmup_input(files, directory, lines=2000):
    """A small input for the warm-up run: the first lines of the first file,
    plus lines that take the exact parser (so its Python worker starts too)."""
    path = os.path.join(directory, "warmup.jsonl")
    with open(files[0], "rb") as src, open(path, "wb") as dst:
        for k, line in enumerate(src):
            if k >= lines:
                break
            dst.write(line if line.endswith(b"\n") else line + b"\n")
        dst.write(b"not json\n{\"quantity\": 3.0}\n")
    return [path]


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="spark_orders.py",
        description="The Spark side of Weir's orders benchmark (see bench/README.md).")
    ap.add_argument("--input", required=True,
                    help="directory of *.jsonl files (or of *.json files when it has no *.jsonl), one JSON event per line; or one file")
    ap.add_argument("--output", required=True,
                    help="directory for the Parquet tables bronze, dead_letters, silver, gold_<stage> (each replaced)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of a summary")
    ap.add_argument("--pipeline", default=DEFAULT_PIPELINE,
                    help="the Weir pipeline file whose parse_json, filter_paid and aggregate stages are reproduced "
                         "(default: examples/orders/pipeline.toml)")
    ap.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    ap.add_argument("--driver-memory", default="2g", help="spark.driver.memory (default 2g)")
    ap.add_argument("--shuffle-partitions", type=int, default=4, help="spark.sql.shuffle.partitions (default 4)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the warm-up run on the first 2000 lines (then transform_seconds includes the JIT, "
                         "code generation and Python worker start of the first jobs)")
    ap.add_argument("--blank-lines", choices=("reject", "skip"), default="reject",
                    help="empty or whitespace-only lines: dead letters, as parse-json rejects an empty message (default), "
                         "or not records at all")
    ap.add_argument("--strict-json", action="store_true",
                    help="also catch, as parse-json does, a line whose object is followed by more text ending in `}` "
                         "(`{..}}`, `{..}{..}`) and a top-level key repeated after an invalid value; "
                         "costs two more tokenizing passes over every line")
    ap.add_argument("--java-home", default=None, help="the Java 17 to use (default: found automatically)")
    args = ap.parse_args(argv)

    began = time.perf_counter()
    try:
        parse_cfg, filter_cfg, dedupe_cfg, aggregate_cfgs = load_scenario(args.pipeline)
        spec = root_spec(parse_cfg)
        files = input_files(args.input)
        java_version = setup_java(args.java_home)
        import pyspark  # noqa: F401
    except ImportError:
        print("error: PySpark is not installed: pip install pyspark==4.3.0", file=sys.stderr)
        return 1
    except (Unsupported, OSError, KeyError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    # The Python UDF's workers run this same interpreter.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable

    started = time.perf_counter()
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder
             .master(args.master)
             .appName("weir-orders-spark")
             .config("spark.driver.memory", args.driver_memory)
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
             # Weir's timestamps are UTC; an offset-less time is read as UTC.
             .config("spark.sql.session.timeZone", "UTC")
             # Timestamps as INT64 µs (Weir's Timestamp(µs, "UTC")), not INT96.
             .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    startup_seconds = time.perf_counter() - started
    jvm_pid = getattr(getattr(spark.sparkContext._gateway, "proc", None), "pid", None)
    version = spark.version

    options = dict(blank_lines=args.blank_lines, strict_json=args.strict_json)
    warmup_seconds = None
    try:
        if not args.no_warmup:
            began_warmup = time.perf_counter()
            scratch = tempfile.mkdtemp(prefix="weir-spark-warmup-")
            try:
                run(spark, os.path.join(scratch, "out"), spec, filter_cfg, dedupe_cfg, aggregate_cfgs,
                    warmup_input(files, scratch), **options)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
            warmup_seconds = time.perf_counter() - began_warmup
        result = run(spark, args.output, spec, filter_cfg, dedupe_cfg, aggregate_cfgs, files, **options)
    except Exception as e:  # a Spark or Python error: one line, as weir prints
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"error: {type(e).__name__}: {message}", file=sys.stderr)
        return 1
    finally:
        rss = peak_rss_bytes(jvm_pid) if jvm_pid else None
        spark.stop()

    result.update({
        "startup_seconds": round(startup_seconds, 3),
        "warmup_seconds": round(warmup_seconds, 3) if warmup_seconds is not None else None,
        "total_seconds": round(time.perf_counter() - began, 3),
        "spark_version": version,
        "java_version": java_version,
        "master": args.master,
        "input_files": len(files),
    })
    if rss is not None:
        result["jvm_peak_rss_bytes"] = rss
    if args.json:
        print(json.dumps(result))
        return 0
    phases = result["phase_seconds"]
    print(f"Spark {version} ({args.master}, Java {java_version}), {len(files)} input file(s)")
    print(f"  startup (JVM + SparkSession)  {startup_seconds:8.2f} s")
    if warmup_seconds is not None:
        print(f"  warm-up (2000 lines)          {warmup_seconds:8.2f} s")
    print(f"  transform                     {result['transform_seconds']:8.2f} s"
          f"   bronze {phases['bronze']:.2f}, silver {phases['silver']:.2f}, gold {phases['gold']:.2f}")
    print(f"  records                       {result['records']:8d}   {result['records_per_second']:,.0f} records/s")
    print(f"  dead letters                  {result['dead_letters']:8d}")
    print(f"  bronze rows                   {result['bronze_rows']:8d}   "
          f"{result['exact_parser_rows']} lines re-read by the exact parser")
    print(f"  silver rows                   {result['silver_rows']:8d}")
    if rss is not None:
        print(f"  JVM peak RSS                  {rss / 2**20:8.0f} MiB")
    for name, rows in result["gold"].items():
        print(f"== {name}: {len(rows)} rows" + (", the first 10 by key" if len(rows) > 10 else ""))
        for row in rows[:10]:
            print("   " + "  ".join(str(v) for v in row))
    print(f"tables in {os.path.abspath(args.output)}")
    return 0



def stage_bronze(spark, spec, files, blank_lines="reject", strict_json=False):
    """Reads the lines and parses them with from_json: one row per line with
    `_fast` (the fast path vouches for the row), the bronze columns (valid
    where `_fast`) and `_raw` (the line's bytes where not `_fast`)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    parse_schema = spark_types(spec, "parse").add(CORRUPT, T.StringType(), True)
    options = {
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": CORRUPT,
        # ADJUSTMENT: Jackson's leniencies that serde_json does not have, off.
        "allowNonNumericNumbers": "false",  # NaN, Infinity (default true)
        "allowSingleQuotes": "false",       # 'text' (default true)
        "allowComments": "false",
        "allowUnquotedFieldNames": "false",
        "allowNumericLeadingZeros": "false",
        "allowBackslashEscapingAnyCharacter": "false",
        "allowUnquotedControlChars": "false",
    }
    # lineSep "\n": one record per LF-terminated line (Spark's default also
    # splits at a lone CR); a CR before the LF stays, JSON whitespace to both.
    raw = spark.read.option("lineSep", "\n").text(files)
    if blank_lines == "skip":
        raw = raw.filter(F.length(F.trim(F.col("value"), F.lit(" \t\r"))) > 0)
    parsed = raw.select("value", F.from_json("value", parse_schema, options).alias("j"))
    j = F.col("j")
    guard = (
        j.isNotNull()                                   # "", "null", only whitespace
        & j.getField(CORRUPT).isNull()                  # Jackson or a conversion failed
        & F.is_valid_utf8(F.col("value"))               # parse-json rejects invalid UTF-8 in strings
        # ADJUSTMENT: from_json reads the first JSON value of the line and
        # ignores what follows (`{..} x`, `{..}}`); parse-json rejects trailing
        # characters. Lines that do not end in `}` (before JSON whitespace) go
        # to the exact parser; see --strict-json for the rest.
        & F.rtrim(F.col("value"), F.lit(" \t\r")).endswith("}")
        # ADJUSTMENT: `\ud800` (a lone surrogate) is `?` to Jackson and an
        # error to serde_json: every line with an escape is re-read exactly.
        & ~F.col("value").contains("\\")
        & fast_ok(j, spec)
    )
    if strict_json:
        # ADJUSTMENT (opt-in, --strict-json: two more tokenizing passes over
        # every line). (1) The line is one JSON value iff `[line,0]` is an
        # array of two elements (Jackson checks every bracket and comma).
        # (2) from_json keeps the last of a repeated key, as parse-json does,
        # but parse-json also checks the earlier occurrences (`"status":5,
        # "status":"PAID"` is rejected): lines repeating a top-level key go to
        # the exact parser. (Repeated keys inside nested objects are not caught.)
        keys = F.json_object_keys(F.col("value"))
        guard = (guard
                 & (F.json_array_length(F.concat(F.lit("["), F.col("value"), F.lit(",0]"))) == 2)
                 & (F.size(F.array_distinct(keys)) == F.size(keys)))
    staged = parsed.select(
        F.coalesce(guard, F.lit(False)).alias("_fast"),
        *[fast_value(j.getField(f.name), f).alias(f.name) for f in spec.fields],
        F.col("value").cast("binary").alias("_raw"),
    )
    # Only the lines the fast path does not vouch for keep their bytes.
    staged = staged.select(
        "_fast", *[f.name for f in spec.fields],
        F.when(~F.col("_fast"), F.col("_raw")).alias("_raw"))
    return staged


def run(spark, out, spec, filter_cfg, dedupe_cfg, aggregate_cfgs, files, blank_lines="reject", strict_json=False):
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    udf_schema = spark_types(spec, "udf")
    verdict_type = T.StructType([
        T.StructField("row", udf_schema, True),
        T.StructField("field", T.StringType(), True),
        T.StructField("reason", T.StringType(), True),
    ])
    exact_spec = spec  # captured by the UDF (pickled with it)
    if __name__ != "__main__":
        # Imported as a module (tests): ship its code to the Python workers by
        # value, as it is when run as a script.
        from pyspark import cloudpickle
        cloudpickle.register_pickle_by_value(sys.modules[__name__])

    @F.udf(returnType=verdict_type, useArrow=False)
    def exact_parse(raw):
        return weir_parse(raw, exact_spec)

    t0 = time.perf_counter()
    staged = stage_bronze(spark, spec, files, blank_lines, strict_json)
    staged = staged.persist(StorageLevel.MEMORY_AND_DISK)

    slow = (staged.filter(~F.col("_fast"))
            .select("_raw", exact_parse(F.col("_raw")).alias("v"))
            .persist(StorageLevel.MEMORY_AND_DISK))
    bronze = staged.filter(F.col("_fast")).select(*[f.name for f in spec.fields]).unionByName(
        slow.filter(F.col("v.row").isNotNull())
            .select(*[udf_value(F.col("v.row").getField(f.name), f).alias(f.name) for f in spec.fields]))
    dead = slow.filter(F.col("v.row").isNull()).select(
        F.col("_raw").alias("raw"), F.col("v.field").alias("field"), F.col("v.reason").alias("reason"))

    bronze.write.mode("overwrite").parquet(os.path.join(out, "bronze"))
    dead.write.mode("overwrite").parquet(os.path.join(out, "dead_letters"))
    counts = {r["_fast"]: r["count"] for r in staged.groupBy("_fast").count().collect()}
    records = sum(counts.values())
    exact_rows = counts.get(False, 0)
    dead_letters = dead.count()
    bronze_rows = records - dead_letters
    t1 = time.perf_counter()

    # silver: filter-paid (+ the stage's host dedupe)
    status = filter_cfg.get("status_column", "status")
    keep = filter_cfg.get("keep", ["PAID"])
    # Exact, case-sensitive match, no trimming; a null status is not kept
    # (null IN (...) is null, which filter drops).
    paid = bronze.filter(F.col(status).isin(*keep))
    keys = []
    if filter_cfg.get("dedupe_on", "event_id") is not None:
        keys.append([filter_cfg.get("dedupe_on", "event_id")])  # filter-paid's own, within a batch
    if dedupe_cfg and list(dedupe_cfg["key"]) not in keys:
        keys.append(list(dedupe_cfg["key"]))  # the stage's host dedupe, across batches
    for key in keys:
        # Spark keeps one row per key (Weir: the first in stream order). The
        # host dedupe's watermark (retention) does not apply to a batch job.
        paid = paid.dropDuplicates(key)
    lifted = [(f["path"], f.get("as") or f["path"].replace(".", "_")) for f in filter_cfg.get("flatten", [])]
    columns = []
    for f in spec.fields:
        from_here = [(p, n) for p, n in lifted if p.startswith(f.name + ".")]
        if not from_here or not filter_cfg.get("drop_flattened", True):
            columns.append(F.col(f.name))
        columns += [F.col(p).alias(n) for p, n in from_here]
    silver = paid.select(*columns).persist(StorageLevel.MEMORY_AND_DISK)
    silver.write.mode("overwrite").parquet(os.path.join(out, "silver"))
    silver_rows = silver.count()
    t2 = time.perf_counter()

    gold = {}
    for name, config in aggregate_cfgs:
        groups = [(g, g.replace(".", "_")) for g in config.get("group_by", [])]
        aggs = []
        for a in config["aggregates"]:
            fn = a["function"]
            if fn == "count":
                expr = F.count(F.lit(1)) if not a.get("of") else F.count(measure(a["of"], silver.schema)[0])
            else:
                col = measure(a["of"], silver.schema)[0]
                expr = {"sum": F.sum, "min": F.min, "max": F.max}[fn](col)
            aggs.append(expr.alias(a["name"]))
        table = silver.groupBy(*[F.col(g).alias(n) for g, n in groups]).agg(*aggs).persist()
        table.write.mode("overwrite").parquet(os.path.join(out, f"gold_{name}"))
        rows = [[exact(v) for v in r] for r in table.collect()]
        width = len(groups)
        rows.sort(key=lambda r: tuple((v is None, v if v is not None else "") for v in r[:width]))
        gold[name] = rows
        table.unpersist()
    t3 = time.perf_counter()
    staged.unpersist()
    slow.unpersist()
    silver.unpersist()

    transform = t3 - t0
    return {
        "records": records,
        "dead_letters": dead_letters,
        "bronze_rows": bronze_rows,
        "silver_rows": silver_rows,
        "exact_parser_rows": exact_rows,
        "transform_seconds": round(transform, 3),
        "phase_seconds": {"bronze": round(t1 - t0, 3), "silver": round(t2 - t1, 3), "gold": round(t3 - t2, 3)},
        "records_per_second": round(records / transform, 1) if transform > 0 else None,
        "gold": gold,
    }


if __name__ == "__main__":
    sys.exit(main())
