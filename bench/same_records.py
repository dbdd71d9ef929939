#!/usr/bin/env python3
"""Compare two JSONL outputs of ``tlsa analyze`` record by record.

Usage: ``python bench/same_records.py BEFORE.jsonl AFTER.jsonl [--ignore FIELD ...]``.

Records are matched by ``uid`` (which hashes the capture's base name, the 4-tuple and the
first packet time) and, where captures in different folders share a name and a
connection, by their order in the file. Fields present in only one of the two files
(columns a change added or removed) are listed, not compared; every shared field must be
equal. Prints one line per difference (at most 20 per field) and a summary; exits 1 when
anything differs, so a script or a test can rely on it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def load(path: Path) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    seen: Counter[str] = Counter()
    with path.open() as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                uid = row["uid"]
                seen[uid] += 1
                rows[uid if seen[uid] == 1 else f"{uid}#{seen[uid]}"] = row
    return rows


def compare(
    before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], ignore: set[str]
) -> tuple[list[str], set[str], set[str]]:
    """Differences as lines, and the fields only in ``before`` / only in ``after``."""
    lines: list[str] = []
    fields_before = {k for row in before.values() for k in row}
    fields_after = {k for row in after.values() for k in row}
    shared = (fields_before & fields_after) - ignore
    for uid in sorted(before.keys() - after.keys()):
        lines.append(f"{uid}: only in BEFORE ({before[uid].get('capture')})")
    for uid in sorted(after.keys() - before.keys()):
        lines.append(f"{uid}: only in AFTER ({after[uid].get('capture')})")
    shown: Counter[str] = Counter()
    for uid in sorted(before.keys() & after.keys()):
        b, a = before[uid], after[uid]
        for name in sorted(shared):
            if b.get(name) != a.get(name):
                shown[name] += 1
                if shown[name] <= 20:
                    lines.append(f"{uid} {b.get('capture')}: {name}: {b.get(name)!r} -> "
                                 f"{a.get(name)!r}")
    lines += [f"{name}: {n} records differ" for name, n in shown.items() if n > 20]
    return lines, fields_before - fields_after, fields_after - fields_before


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--ignore", nargs="*", default=[], help="fields not compared")
    args = ap.parse_args(argv)
    before, after = load(args.before), load(args.after)
    lines, removed, added = compare(before, after, set(args.ignore))
    for line in lines:
        print(line)
    print(f"{len(before)} records before, {len(after)} after; "
          f"{len(lines)} differences; fields added: {sorted(added) or 'none'}; "
          f"removed: {sorted(removed) or 'none'}")
    return 1 if lines or removed else 0


if __name__ == "__main__":
    sys.exit(main())
