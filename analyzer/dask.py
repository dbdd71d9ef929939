"""``analyzer.dask``: captures analyzed on a Dask cluster, as a Dask DataFrame.

::

    from distributed import Client
    import analyzer.dask

    client = Client("tcp://scheduler:8786")
    df = analyzer.dask.read_pcaps("s3://captures/2024-06-01/", client)
    df[df.outcome == "failed"].groupby("failure").size().compute()

The implementation is :mod:`analyzer.scale.dask` (this module only re-exports it; it is
named like the ``dask`` package, so everything here imports absolutely).
"""

from __future__ import annotations

from analyzer.scale.dask import CaptureWarning, read_pcaps

__all__ = ["CaptureWarning", "read_pcaps"]
