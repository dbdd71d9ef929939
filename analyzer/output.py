"""File outputs of records: JSONL, CSV and Parquet (SPEC §3, §5).

JSONL: one object per line, SPEC §3 field names, ``null`` for unknown, lists as arrays,
``ts`` as float epoch seconds. CSV: the same columns; lists and ``alerts`` as JSON
strings; values that a spreadsheet would run as a formula are defused with a leading
``'``. Parquet goes through :mod:`analyzer.frame` (pandas + pyarrow).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable
from typing import IO, Any

from analyzer.record import RECORD_FIELDS, HandshakeRecord

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

_JSON_UNSAFE = {
    c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}
"""Characters JSON lets through raw that a terminal acts on (DEL, C1 controls such as the
8-bit CSI) or that reorder the text shown (bidi overrides): written as ``\\u`` escapes,
so a JSONL printed to a terminal cannot drive it; the decoded strings are unchanged."""


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False).encode
"""Records hold no cycles: not tracking every list and dict on the way saves ~15-30 % of
the encoding (the same text)."""
_UNSAFE = re.compile("[" + "".join(map(chr, _JSON_UNSAFE)) + "]")


def json_line(value: Any) -> str:
    """One line of JSON, with the characters a terminal acts on escaped."""
    text = _encode(value)
    if text.isascii() and "\x7f" not in text:  # all unsafe ones are 0x7f and above: 0.1 µs
        return text
    return text.translate(_JSON_UNSAFE) if _UNSAFE.search(text) else text


def jsonl_line(record: HandshakeRecord) -> str:
    return json_line(record.to_dict())


def write_jsonl(records: Iterable[HandshakeRecord], out: IO[str]) -> int:
    n = 0
    for r in records:
        out.write(jsonl_line(r))
        out.write("\n")
        n += 1
    return n


def csv_cell(value: Any) -> Any:
    """One CSV cell: JSON for lists/dicts, formula-looking text defused."""
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, str) and value.startswith(FORMULA_START):
        # A negative number is data, not a formula.
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def write_csv(records: Iterable[HandshakeRecord], out: IO[str]) -> int:
    writer = csv.writer(out)
    writer.writerow(RECORD_FIELDS)
    n = 0
    for r in records:
        d = r.to_dict()
        writer.writerow([csv_cell(d[f]) for f in RECORD_FIELDS])
        n += 1
    return n


def write_parquet(records: Iterable[HandshakeRecord], path: str) -> int:
    import pyarrow.parquet as pq

    from analyzer.frame import to_arrow

    table = to_arrow(list(records))
    pq.write_table(table, path)
    return int(table.num_rows)
