"""Saved records read back: ``analyzer.read_records(path)``.

A JSONL file (``tlsa analyze -f jsonl``) or a Parquet file (``-f parquet``) comes back as
a pandas DataFrame with exactly the dtypes :func:`analyzer.frame.to_dataframe` gives a
fresh analysis (UTC datetimes, categoricals over the spec's fixed value lists, ``string``
text, lists as lists), so a saved run and a new one compare and concatenate without
conversions. A DataFrame rather than records, because a saved file is the result, not
the evidence: the certificates and the parser state behind a record are not in it.

:func:`load_frame` takes either kind of saved file or capture inputs (files, directories,
globs: analyzed on the spot), for commands such as ``tlsa diff``.

Not here: writing (:mod:`analyzer.output`), CSV (its cells are defused for spreadsheets
and not meant to be read back).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.api import CaptureError, Run, collect
from analyzer.diagnosis import DiagnosisOptions

if TYPE_CHECKING:
    import pandas as pd

JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")


class RecordsError(Exception):
    """A saved records file that cannot be read; the message is one line."""


def is_saved_records(path: str | Path) -> bool:
    return str(path).lower().endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES)


def read_records(path: str | Path) -> pd.DataFrame:
    """A saved JSONL or Parquet file of records as a DataFrame with the SPEC §5 dtypes.

    Raises :class:`RecordsError` (one line) for a file that cannot be read or holds
    something other than records."""
    from analyzer.frame import frame_from_rows

    p = Path(path)
    name = p.name.lower()
    if name.endswith(PARQUET_SUFFIXES):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(p)
        except (OSError, pa.ArrowException) as e:
            raise RecordsError(f"{path}: cannot read it as Parquet ({e})") from e
        _check_columns(path, table.column_names)
        # Through Python values, the way JSONL comes in, so the dtypes are the same.
        parquet_rows = table.to_pylist()
        for row in parquet_rows:
            for col in ("ts", "ts_end"):
                if row.get(col) is not None:
                    row[col] = row[col].timestamp()
        return frame_from_rows(parquet_rows)
    rows: list[dict[str, Any]] = []
    try:
        with p.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise RecordsError(f"{path}: line {n} is not JSON ({e})") from e
                if not isinstance(row, dict):
                    raise RecordsError(f"{path}: line {n} is not a JSON object")
                rows.append(row)
    except OSError as e:
        raise RecordsError(f"{path}: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise RecordsError(f"{path}: not UTF-8 text ({e.reason})") from e
    if rows:
        _check_columns(path, rows[0].keys())
    return frame_from_rows(rows)


def _fields() -> tuple[str, ...]:
    from analyzer.record import RECORD_FIELDS

    return RECORD_FIELDS


def _check_columns(path: str | Path, columns: Any) -> None:
    missing = [c for c in ("uid", "ts", "server_ip", "server_port", "outcome") if c not in columns]
    if missing:
        raise RecordsError(f"{path}: not a file of tlsa records (no {', '.join(missing)})")


def load_frame(
    inputs: Sequence[str | Path],
    *,
    tls_ports: Sequence[int] = (),
    options: DiagnosisOptions | None = None,
    run: Run | None = None,
) -> pd.DataFrame:
    """Records of ``inputs`` as a DataFrame: one saved records file (JSONL, Parquet), or
    captures (files, directories, globs) analyzed now. Unreadable captures raise
    :class:`analyzer.CaptureError` (after every good one was read)."""
    import pandas as pd

    from analyzer.frame import to_dataframe

    saved = [i for i in inputs if is_saved_records(i)]
    captures = [i for i in inputs if not is_saved_records(i)]
    frames = [read_records(p) for p in saved]
    if captures or not frames:
        run = run if run is not None else Run()
        records = collect(captures, run, tls_ports=tls_ports, options=options)
        if run.errors:
            raise CaptureError("\n".join(run.errors))
        frames.append(to_dataframe(records))
    if len(frames) == 1:
        return frames[0]
    from analyzer.frame import with_dtypes

    return with_dtypes(pd.concat(frames, ignore_index=True))
