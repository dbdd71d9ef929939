"""Records as a pandas DataFrame or an Arrow table (the edge where pandas lives).

Columns are SPEC §3 fields in record order. ``ts``/``ts_end`` are UTC datetimes; columns
whose values come from a closed list of the spec are categoricals over that fixed list, so
frames from several files or partitions concatenate without losing their dtypes; lists
stay Python lists (Arrow list columns in Parquet); ``alerts`` is a list of dicts (a list of
structs in Parquet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from analyzer import record as rec
from analyzer.api import KeyLogArg, PathArg, Run, collect, load_keylog
from analyzer.diagnosis import DiagnosisOptions
from analyzer.record import RECORD_FIELDS, HandshakeRecord

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

CATEGORIES: dict[str, tuple[str, ...]] = {
    "transport": rec.TRANSPORTS,
    "proxy_kind": rec.PROXY_KINDS,
    "outcome": rec.OUTCOMES,
    "failure": rec.FAILURES,
    "failure_side": rec.FAILURE_SIDES,
    "stage": rec.STAGES,
    "close": rec.CLOSES,
    "cert_status": rec.CERT_STATUSES,
    "cert_trust": rec.CERT_TRUSTS,
    "starttls": rec.STARTTLS,
    "icmp_error": rec.ICMP_ERRORS,
}
"""Columns with a fixed value list (the spec's, or ours for ``icmp_error``), and that list."""

TIME_COLUMNS = ("ts", "ts_end")


def to_dataframe(records: Iterable[HandshakeRecord]) -> pd.DataFrame:
    """Records as a DataFrame with the SPEC §5 dtypes (an empty frame keeps its columns)."""

    return frame_from_rows([r.to_dict() for r in records])


STRING_COLUMNS = ("version", "cipher", "group", "capture", "server_ip", "client_ip", "sni",
                  "icmp_from", "quic_version", "quic_history")
"""Text columns with pandas' ``string`` dtype."""


def frame_from_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows of SPEC §3 values (``to_dict`` or JSONL, ``ts`` as epoch seconds) as a DataFrame
    with the SPEC §5 dtypes; columns missing from the rows are filled with nulls."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=list(RECORD_FIELDS))
    return with_dtypes(df)


def with_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (SPEC §3 columns) with the SPEC §5 dtypes: UTC times, categoricals over the
    fixed value lists, ``string`` text columns. Times may be epoch seconds or datetimes."""
    import pandas as pd

    for col in TIME_COLUMNS:
        if pd.api.types.is_datetime64_any_dtype(df[col]):
            df[col] = pd.to_datetime(df[col], utc=True)
        else:
            df[col] = pd.to_datetime(df[col].astype("float64"), unit="s", utc=True)
    for col, values in CATEGORIES.items():
        df[col] = pd.Categorical(df[col], categories=list(values))
    for col in STRING_COLUMNS:
        df[col] = df[col].astype("string")
    return df


def read_pcap(
    paths: PathArg,
    *,
    tls_ports: Iterable[int] = (),
    ca_bundle: str | None = None,
    verify: bool = True,
    keylog: KeyLogArg = None,
) -> pd.DataFrame:
    """Analyze captures and return every record as a DataFrame, sorted by ``(ts, uid)``.

    Unreadable inputs raise :class:`analyzer.CaptureError` (other inputs are still read
    first; use :func:`analyzer.api.collect` to get both the records and the errors).
    """
    from analyzer.api import CaptureError

    run = Run()
    options = DiagnosisOptions(ca_bundle=ca_bundle, verify=verify)
    records = collect(paths, run, tls_ports=tls_ports, options=options, keylog=load_keylog(keylog))
    if run.errors:
        raise CaptureError("\n".join(run.errors))
    return to_dataframe(records)


def _arrow_type(annotation: str, name: str) -> pa.DataType:
    import pyarrow as pa

    if name in TIME_COLUMNS:
        return pa.timestamp("us", tz="UTC")
    if name == "alerts":
        return pa.list_(
            pa.struct(
                [
                    ("from", pa.string()),
                    ("level", pa.string()),
                    ("description", pa.string()),
                    ("code", pa.int32()),
                    ("encrypted", pa.bool_()),
                ]
            )
        )
    if name == "timeline":
        return pa.list_(pa.list_(pa.string()))
    base = annotation.replace(" | None", "")
    simple: dict[str, pa.DataType] = {
        "str": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "list[str]": pa.list_(pa.string()),
        "list[int]": pa.list_(pa.int64()),
    }
    return simple.get(base, pa.string())


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    types = {f.name: str(f.type) for f in fields(HandshakeRecord)}
    return pa.schema([(name, _arrow_type(types[name], name)) for name in RECORD_FIELDS])


def to_arrow(records: Sequence[HandshakeRecord]) -> pa.Table:
    """Records as an Arrow table with a fixed schema (Parquet output)."""
    import pyarrow as pa

    schema = arrow_schema()
    columns: dict[str, list[Any]] = {name: [] for name in RECORD_FIELDS}
    for r in records:
        d = r.to_dict()
        for name in RECORD_FIELDS:
            value = d[name]
            if name in TIME_COLUMNS:
                value = int(value * 1_000_000)
            elif name == "timeline":
                value = [[str(x) for x in entry] for entry in value]
            columns[name].append(value)
    return pa.table(columns, schema=schema)


import analyzer.aggregate  # noqa: E402, F401  (registers the df.tls accessor)
