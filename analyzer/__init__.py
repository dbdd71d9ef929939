"""tls-handshake-analyzer: why TLS handshakes fail, from a capture or a live interface.

Public API::

    analyzer.analyze(paths, **options)   # iterator of HandshakeRecord
    analyzer.read_pcap(paths, **options) # pandas DataFrame (SPEC §3 columns)
    analyzer.live(interface, **options)  # records as handshakes settle on an interface
    analyzer.read_records(path)          # a saved JSONL/Parquet file back as a DataFrame
    analyzer.certificates(paths, **opts) # the certificate inventory as a DataFrame

pandas, matplotlib and pyshark are imported only by the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analyzer import _build  # first: compiled or pure hot path (see analyzer._build)
from analyzer.api import CaptureError, analyze
from analyzer.live import live, live_dataframe
from analyzer.record import AlertInfo, HandshakeRecord

if TYPE_CHECKING:
    import pandas as pd

COMPILED = _build.COMPILED
"""The compiled hot path is in use."""

__all__ = [
    "COMPILED",
    "AlertInfo",
    "CaptureError",
    "HandshakeRecord",
    "analyze",
    "certificates",
    "live",
    "live_dataframe",
    "read_pcap",
    "read_records",
]
__version__ = "0.1.0"


def read_pcap(paths: Any, **options: Any) -> pd.DataFrame:
    """All records of the inputs as a pandas DataFrame (see :func:`analyzer.frame.read_pcap`)."""
    from analyzer.frame import read_pcap as _read_pcap

    return _read_pcap(paths, **options)


def read_records(path: Any) -> pd.DataFrame:
    """A saved JSONL or Parquet file of records as a DataFrame with the dtypes of a fresh
    analysis (see :func:`analyzer.records_io.read_records`)."""
    from analyzer.records_io import read_records as _read_records

    return _read_records(path)


def certificates(
    paths: Any,
    *,
    tls_ports: Any = (),
    ca_bundle: str | None = None,
    verify: bool = True,
    keylog: Any = None,
) -> pd.DataFrame:
    """The certificate inventory of the inputs as a DataFrame: one row per server
    certificate and capture, what breaks next first (see :mod:`analyzer.inventory`).
    Unreadable inputs raise :class:`CaptureError` after the others are read."""
    from analyzer.api import Run, collect, load_keylog
    from analyzer.diagnosis import DiagnosisOptions
    from analyzer.inventory import certificates as _certificates

    run = Run()
    options = DiagnosisOptions(ca_bundle=ca_bundle, verify=verify)
    records = collect(paths, run, tls_ports=tls_ports, options=options,
                      keylog=load_keylog(keylog))
    if run.errors:
        raise CaptureError("\n".join(run.errors))
    return _certificates(records)
