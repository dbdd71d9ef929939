"""Aggregations over the records DataFrame: failures per server, version, cipher, category,
over time; matrices; the handshake funnel; the summary behind ``tlsa summary`` (SPEC §5).

Every function takes the frame of :func:`analyzer.frame.to_dataframe` (or
:func:`analyzer.read_pcap`) and returns a new, tidy DataFrame (one row per group, one column
per measure, a fresh ``RangeIndex``); the matrices are the one wide exception. Counts always
come with rates: ``failed`` next to ``failure_rate``. A connection counts as *failed* when
it has a ``failure`` category (``outcome`` ``failed``, or ``not_tls`` where TLS was expected,
SPEC §4); ``incomplete`` connections are counted, never blamed.

Importing this module registers the ``df.tls`` accessor (:class:`TlsAccessor`). It reads
finished records only and compares connections with each other, so it runs after records
are merged (SPEC §5); it does no I/O and draws nothing (see :mod:`analyzer.plots`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from analyzer.record import FAILURES, OUTCOMES, STAGES, VERSIONS

NONE_LABEL = "(none)"
"""Group label for a missing value (no SNI, no negotiated version, ...)."""

DERIVED_KEYS = {
    "server": "server address as IP:port ([IPv6]:port)",
    "client": "client IP address",
    "server_name": "SNI when sent, else the server IP",
    "max_offered_version": "highest version the client offered",
    "offered_version": "each version the client offered (a connection counts once per version)",
    "offered_cipher": "each cipher suite the client offered",
}
"""Keys :func:`failures_by` understands besides plain column names."""

_NICE_BINS = (
    "1ms", "2ms", "5ms", "10ms", "20ms", "50ms", "100ms", "200ms", "500ms",
    "1s", "2s", "5s", "10s", "15s", "30s",
    "1min", "2min", "5min", "10min", "15min", "30min",
    "1h", "2h", "3h", "6h", "12h", "1D", "2D", "7D", "30D",
)  # fmt: skip
"""Candidate time bins, smallest first: round numbers a reader can add up."""

_VERSION_RANK = {v: i for i, v in enumerate(VERSIONS)}


def failed_mask(df: pd.DataFrame) -> pd.Series:
    """True for connections with a failure category (SPEC §4)."""
    return df["failure"].notna()


def failed(df: pd.DataFrame) -> pd.DataFrame:
    """The failed connections, in capture order."""
    return df[failed_mask(df)].reset_index(drop=True)


def _label(values: pd.Series) -> pd.Series:
    """Values as plain strings, missing ones as :data:`NONE_LABEL`."""
    out = values.astype("object").where(values.notna(), NONE_LABEL)
    return out.map(str).astype("object")


def server_address(df: pd.DataFrame) -> pd.Series:
    """``IP:port`` per connection, IPv6 addresses in brackets; ``IP:port/udp`` for QUIC and
    DTLS (a QUIC server and a TCP one on the same address and port are two servers)."""
    ip = df["server_ip"].astype("object").fillna("?").map(str)
    bracketed = ip.where(~ip.str.contains(":", regex=False), "[" + ip + "]")
    address = bracketed + ":" + df["server_port"].astype("int64").astype(str)
    if "transport" in df.columns:
        udp = df["transport"].astype("object").isin(("quic", "dtls"))
        address = address.where(~udp, address + "/udp")
    return address.astype("object")


def _max_version(versions: Any) -> str:
    if not isinstance(versions, list | tuple) or not versions:
        return NONE_LABEL
    known = [v for v in versions if v in _VERSION_RANK]
    if not known:
        return str(max(versions))
    return str(max(known, key=_VERSION_RANK.__getitem__))


def key_series(df: pd.DataFrame, key: str) -> pd.Series:
    """One grouping key per connection: a column, or one of :data:`DERIVED_KEYS`
    (the list keys ``offered_version``/``offered_cipher`` are not per connection: use
    :func:`failures_by`)."""
    if key == "server":
        return server_address(df)
    if key == "client":
        return _label(df["client_ip"])
    if key == "server_name":
        return _label(df["sni"].astype("object").fillna(df["server_ip"].astype("object")))
    if key == "max_offered_version":
        return df["offered_versions"].map(_max_version).astype("object")
    if key not in df.columns:
        known = ", ".join([*DERIVED_KEYS, "or a column name"])
        raise KeyError(f"unknown key {key!r}: use {known}")
    return _label(df[key])


_LIST_KEYS = {"offered_version": "offered_versions", "offered_cipher": "offered_ciphers"}


def _measures(df: pd.DataFrame) -> pd.DataFrame:
    """Per-connection indicator columns that the group counts add up."""
    outcome = df["outcome"].astype("object")
    return pd.DataFrame(
        {
            "established": (outcome == "established").astype("int64"),
            "failed": failed_mask(df).astype("int64"),
            "incomplete": (outcome == "incomplete").astype("int64"),
            "failure": df["failure"].astype("object"),
        },
        index=df.index,
    )


def _keyed(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    frame = _measures(df)
    explode = []
    for key in keys:
        if key in _LIST_KEYS:
            values = df[_LIST_KEYS[key]].map(lambda v: list(v) if isinstance(v, list) else [])
            frame[key] = values.map(lambda v: v or [NONE_LABEL])
            explode.append(key)
        else:
            frame[key] = key_series(df, key)
    for key in explode:
        frame = frame.explode(key)
    return frame


def _most_common(values: pd.Series) -> Any:
    counts = values.dropna().value_counts()
    return counts.index[0] if len(counts) else None


def failures_by(
    df: pd.DataFrame, by: str | Sequence[str], *, top: int | None = None
) -> pd.DataFrame:
    """Connections, outcomes and the failure rate per group, worst first.

    ``by``: a column (``sni``, ``version``, ``cipher``, ``failure_side``, ``capture`` ...),
    a derived key (:data:`DERIVED_KEYS`: ``server``, ``client``, ``server_name``,
    ``max_offered_version``, ``offered_version``, ``offered_cipher``), or a list of them,
    e.g. ``["server", "sni"]``. Columns: the keys, ``connections``, ``established``,
    ``failed``, ``incomplete``, ``failure_rate`` (failed / connections, 0..1),
    ``top_failure`` (most frequent category in the group, None without failures) and
    ``top_failure_count``. Sorted by ``failed`` then ``connections`` (descending), then
    the keys; ``top`` keeps the first rows.
    """
    keys = [by] if isinstance(by, str) else list(by)
    columns = [
        *keys, "connections", "established", "failed", "incomplete",
        "failure_rate", "top_failure", "top_failure_count",
    ]  # fmt: skip
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    frame = _keyed(df, keys)
    grouped = frame.groupby(keys, sort=False, dropna=False)
    out = grouped[["established", "failed", "incomplete"]].sum()
    out.insert(0, "connections", grouped.size())
    out["failure_rate"] = out["failed"] / out["connections"]
    top_failure = grouped["failure"].agg(_most_common)
    out["top_failure"] = top_failure
    top_counts = frame.groupby([*keys, "failure"], sort=False, dropna=True).size()
    out["top_failure_count"] = [
        int(top_counts.get((*(k if isinstance(k, tuple) else (k,)), f), 0)) if f else 0
        for k, f in zip(out.index, top_failure, strict=True)
    ]
    out = out.reset_index()
    out = out.sort_values(
        ["failed", "connections", *keys], ascending=[False, False, *[True] * len(keys)]
    )
    out = out.reset_index(drop=True)[columns]
    return out.head(top) if top is not None else out


def worst_servers(df: pd.DataFrame, *, top: int = 10) -> pd.DataFrame:
    """Servers (IP:port and SNI) with at least one failure, worst first (see
    :func:`failures_by`)."""
    out = failures_by(df, ["server", "sni"])
    return out[out["failed"] > 0].head(top).reset_index(drop=True)


def failure_categories(df: pd.DataFrame) -> pd.DataFrame:
    """One row per failure category seen, most frequent first.

    Columns: ``failure``, ``count``, ``share`` (of failures, 0..1), ``rate`` (of all
    connections, 0..1), ``failure_side`` (most frequent), ``inferred`` (how many rest on
    a heuristic), ``servers`` (distinct IP:port), ``example_uid`` and ``example_reason``
    (the first such connection in capture order).
    """
    columns = [
        "failure", "count", "share", "rate", "failure_side", "inferred", "servers",
        "example_uid", "example_reason",
    ]  # fmt: skip
    bad = df[failed_mask(df)]
    if bad.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    frame = pd.DataFrame(
        {
            "failure": bad["failure"].astype("object"),
            "side": bad["failure_side"].astype("object"),
            "inferred": bad["inferred"].astype(bool).astype("int64"),
            "server": server_address(bad),
            "uid": bad["uid"].astype("object"),
            "reason": bad["reason"].astype("object"),
            "ts": bad["ts"],
        }
    ).sort_values(["ts", "uid"], kind="stable")
    g = frame.groupby("failure", sort=False)
    out = pd.DataFrame(
        {
            "count": g.size(),
            "failure_side": g["side"].agg(_most_common),
            "inferred": g["inferred"].sum(),
            "servers": g["server"].nunique(),
            "example_uid": g["uid"].first(),
            "example_reason": g["reason"].first(),
        }
    )
    out["share"] = out["count"] / out["count"].sum()
    out["rate"] = out["count"] / len(df)
    out = out.reset_index()
    order = {f: i for i, f in enumerate(FAILURES)}
    out["_order"] = out["failure"].map(order)
    out = out.sort_values(["count", "_order"], ascending=[False, True])
    return out.reset_index(drop=True)[columns]


def outcome_counts(df: pd.DataFrame) -> pd.DataFrame:
    """``outcome``, ``count``, ``share`` (0..1) for every outcome of the spec, in spec order
    (zeros included, so tables from several captures line up)."""
    counts = df["outcome"].astype("object").value_counts()
    out = pd.DataFrame(
        {"outcome": list(OUTCOMES), "count": [int(counts.get(o, 0)) for o in OUTCOMES]}
    )
    out["share"] = out["count"] / max(len(df), 1)
    return out


def time_bin(df: pd.DataFrame, *, target: int = 40) -> str:
    """A round pandas frequency (``"10s"``, ``"5min"``, ...) giving at most ``target`` bins
    over the capture's span (first ``ts`` to last ``ts``)."""
    if df.empty:
        return "1s"
    span = df["ts"].max() - df["ts"].min()
    for freq in _NICE_BINS:
        if span / pd.Timedelta(freq) <= target:
            return freq
    return _NICE_BINS[-1]


def over_time(df: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Connections per time bin (by first packet): ``time`` (bin start, UTC),
    ``connections``, ``established``, ``failed``, ``incomplete``, ``failure_rate`` (NaN for
    an empty bin). ``freq`` defaults to :func:`time_bin`; empty bins are kept."""
    freq = freq or time_bin(df)
    columns = ["time", "connections", "established", "failed", "incomplete", "failure_rate"]
    if df.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    frame = _measures(df).drop(columns="failure")
    frame["connections"] = 1
    frame.index = pd.DatetimeIndex(df["ts"])
    out = frame.resample(freq, origin="epoch").sum()
    out["failure_rate"] = out["failed"] / out["connections"].where(out["connections"] > 0)
    out = out.rename_axis("time").reset_index()
    return out[columns]


def failures_over_time(df: pd.DataFrame, freq: str | None = None) -> pd.DataFrame:
    """Failures per time bin and category, long form: ``time``, ``failure``, ``count``.
    Every bin of the capture's span appears for every category seen (zeros included), so
    the frame pivots straight into a stacked chart."""
    freq = freq or time_bin(df)
    bad = df[failed_mask(df)]
    if bad.empty:
        return pd.DataFrame(
            {"time": pd.Series(dtype="datetime64[ns, UTC]"), "failure": [], "count": []}
        )
    full = pd.DatetimeIndex(over_time(df, freq)["time"])
    onehot = pd.get_dummies(bad["failure"].astype("object")).astype("int64")
    onehot.index = pd.DatetimeIndex(bad["ts"])
    wide = onehot.resample(freq, origin="epoch").sum().reindex(full, fill_value=0)
    order = [f for f in FAILURES if f in wide.columns]
    long = wide[order].rename_axis("time").reset_index()
    long = long.melt(id_vars="time", var_name="failure", value_name="count")
    return long.reset_index(drop=True)


def crosstab(
    df: pd.DataFrame, rows: str, cols: str = "failure", *, failed_only: bool | None = None
) -> pd.DataFrame:
    """A wide count matrix: one row per value of ``rows``, one column per value of ``cols``
    (keys as in :func:`failures_by`). Failure categories and outcomes keep the spec's
    order. ``failed_only`` defaults to True when ``cols`` is ``failure``."""
    if failed_only is None:
        failed_only = cols == "failure"
    frame = df[failed_mask(df)] if failed_only else df
    if frame.empty:
        return pd.DataFrame()
    left = key_series(frame, rows).rename(rows)
    right = key_series(frame, cols).rename(cols)
    table = pd.crosstab(left, right)
    spec_order = {"failure": FAILURES, "outcome": OUTCOMES, "stage": STAGES}
    if cols in spec_order:
        table = table[[c for c in spec_order[cols] if c in table.columns]]
    if rows in ("version", "max_offered_version"):
        ranked = sorted(table.index, key=lambda v: (_VERSION_RANK.get(v, -1), v), reverse=True)
        table = table.loc[ranked]
    else:
        table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    table.columns.name = cols
    return table


def version_failure_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Negotiated version × failure category (failed connections)."""
    return crosstab(df, "version", "failure")


def cipher_failure_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Negotiated cipher suite × failure category (failed connections)."""
    return crosstab(df, "cipher", "failure")


def version_outcome_matrix(df: pd.DataFrame) -> pd.DataFrame:
    """Negotiated version × outcome (all connections; every outcome of the spec)."""
    table = crosstab(df, "version", "outcome", failed_only=False)
    if table.empty:
        return table
    return table.reindex(columns=list(OUTCOMES), fill_value=0)


def stage_funnel(df: pd.DataFrame) -> pd.DataFrame:
    """How far handshakes got: one row per ``stage`` of the spec, in order.

    ``reached``: connections whose furthest stage is this one or later; ``share``: of all
    connections; ``stopped``: connections whose furthest stage is exactly this one;
    ``failed``: of those, how many failed. TLS 1.3 hides the certificate, so its
    handshakes go from ``server_hello`` straight to ``established`` (SPEC §3): an
    established TLS 1.3 connection counts as having passed the hidden stages.
    """
    stage = df["stage"].astype("object")
    bad = failed_mask(df)
    stopped = [int((stage == s).sum()) for s in STAGES]
    failed_at = [int(((stage == s) & bad).sum()) for s in STAGES]
    reached = [sum(stopped[i:]) for i in range(len(STAGES))]
    out = pd.DataFrame(
        {"stage": list(STAGES), "reached": reached, "stopped": stopped, "failed": failed_at}
    )
    out["share"] = out["reached"] / max(len(df), 1)
    return out[["stage", "reached", "share", "stopped", "failed"]]


def handshake_times(df: pd.DataFrame) -> pd.DataFrame:
    """Handshake durations (ClientHello → established or failure) of the connections that
    have one: ``uid``, ``group`` (``established`` or ``failed``), ``handshake_ms``."""
    has_time = df["handshake_time"].notna()
    outcome = df["outcome"].astype("object")
    group = pd.Series(None, index=df.index, dtype="object")
    group[outcome == "established"] = "established"
    group[failed_mask(df)] = "failed"
    keep = has_time & group.notna()
    return pd.DataFrame(
        {
            "uid": df.loc[keep, "uid"].astype("object"),
            "group": group[keep],
            "handshake_ms": df.loc[keep, "handshake_time"].astype("float64") * 1000.0,
        }
    ).reset_index(drop=True)


def handshake_time_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Per group (``established``, ``failed``): ``count``, ``median_ms``, ``p90_ms``,
    ``max_ms``."""
    times = handshake_times(df)
    g = times.groupby("group")["handshake_ms"]
    out = pd.DataFrame(
        {
            "count": g.size(),
            "median_ms": g.median(),
            "p90_ms": g.quantile(0.9),
            "max_ms": g.max(),
        }
    )
    out = out.reindex(["established", "failed"]).dropna(how="all")
    return out.rename_axis("group").reset_index()


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for row in frame.to_dict(orient="records"):
        clean: dict[str, Any] = {}
        for k, v in row.items():
            if hasattr(v, "item"):
                v = v.item()
            if isinstance(v, float) and v != v:
                v = None
            clean[str(k)] = v
        rows.append(clean)
    return rows


def summary(
    df: pd.DataFrame, *, quic: int = 0, captures: Sequence[str] = (), top: int = 10
) -> dict[str, Any]:
    """Everything ``tlsa summary`` and the report's header show, as JSON-ready values.

    ``quic``: UDP datagrams on port 443 that belonged to no connection analyzed (the
    engine's ``udp_quic``: a QUIC connection whose start the capture missed, other traffic
    on that port). QUIC connections and DTLS associations are analyzed like TCP ones:
    ``transport_mix`` counts each transport, ``quic_versions`` the QUIC versions.
    """
    quic_datagrams = quic
    n = len(df)
    n_failed = int(failed_mask(df).sum())
    start = df["ts"].min() if n else None
    end = df["ts_end"].max() if n else None
    cats = failure_categories(df)
    servers = worst_servers(df, top=top)
    versions = failures_by(df, "version")
    versions = versions.sort_values("connections", ascending=False, kind="stable")
    ciphers = failures_by(df, "cipher")
    ciphers = ciphers.sort_values("connections", ascending=False, kind="stable")
    outcomes = outcome_counts(df)
    transports = failures_by(df, "transport")
    transports = transports.sort_values("connections", ascending=False, kind="stable")
    quic_rows = df["quic_version"][df["transport"] == "quic"] if n else pd.Series(dtype=object)
    return {
        "connections": n,
        "failed": n_failed,
        "failure_rate": n_failed / n if n else 0.0,
        "start": start.isoformat(timespec="milliseconds") if start is not None else None,
        "end": end.isoformat(timespec="milliseconds") if end is not None else None,
        "outcomes": {r["outcome"]: r["count"] for r in _records(outcomes) if r["count"]},
        "failures": [
            {
                "failure": r["failure"],
                "count": r["count"],
                "share": r["share"],
                "failure_side": r["failure_side"],
                "servers": r["servers"],
                "inferred": r["inferred"],
                "example": r["example_reason"],
                "example_uid": r["example_uid"],
            }
            for r in _records(cats)
        ],
        "worst_servers": [
            {
                "server": r["server"],
                "sni": None if r["sni"] == NONE_LABEL else r["sni"],
                "connections": r["connections"],
                "failed": r["failed"],
                "failure_rate": r["failure_rate"],
                "top_failure": r["top_failure"],
            }
            for r in _records(servers)
        ],
        "versions": {r["version"]: r["connections"] for r in _records(versions)},
        "version_mix": _records(versions[["version", "connections", "established", "failed"]]),
        "ciphers": {r["cipher"]: r["connections"] for r in _records(ciphers.head(top))},
        "cipher_mix": _records(
            ciphers[["cipher", "connections", "established", "failed"]].head(top)
        ),
        "transport_mix": _records(
            transports[["transport", "connections", "established", "failed"]]
        ),
        "quic_versions": {str(k): int(v) for k, v in quic_rows.value_counts().items() if v},
        "udp_quic_datagrams": int(quic_datagrams),
        "captures": sorted(captures) if captures else sorted(df["capture"].dropna().unique()),
    }


@pd.api.extensions.register_dataframe_accessor("tls")
class TlsAccessor:
    """``df.tls``: the aggregations of :mod:`analyzer.aggregate` as methods of a records
    DataFrame, e.g. ``df.tls.failures_by("sni")`` or ``df.tls.over_time("1min")``."""

    def __init__(self, df: pd.DataFrame) -> None:
        missing = {"outcome", "failure", "ts"} - set(df.columns)
        if missing:
            raise AttributeError(f"not a records frame (missing {', '.join(sorted(missing))})")
        self._df = df

    def failed(self) -> pd.DataFrame:
        return failed(self._df)

    def failures_by(self, by: str | Sequence[str], *, top: int | None = None) -> pd.DataFrame:
        return failures_by(self._df, by, top=top)

    def worst_servers(self, *, top: int = 10) -> pd.DataFrame:
        return worst_servers(self._df, top=top)

    def categories(self) -> pd.DataFrame:
        return failure_categories(self._df)

    def outcomes(self) -> pd.DataFrame:
        return outcome_counts(self._df)

    def over_time(self, freq: str | None = None) -> pd.DataFrame:
        return over_time(self._df, freq)

    def failures_over_time(self, freq: str | None = None) -> pd.DataFrame:
        return failures_over_time(self._df, freq)

    def matrix(self, rows: str, cols: str = "failure") -> pd.DataFrame:
        return crosstab(self._df, rows, cols)

    def funnel(self) -> pd.DataFrame:
        return stage_funnel(self._df)

    def handshake_times(self) -> pd.DataFrame:
        return handshake_times(self._df)

    def summary(self) -> dict[str, Any]:
        return summary(self._df)
