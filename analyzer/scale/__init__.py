"""Scale-out: the same analysis on every core of a machine or on a Dask cluster.

:mod:`analyzer.scale.local` runs worker processes (``tlsa analyze --workers N``);
:mod:`analyzer.scale.dask` runs the same units of work as Dask tasks (``--dask ADDRESS``,
:func:`analyzer.dask.read_pcaps`). Both split work by file and, for large files, by shard
(:mod:`analyzer.scale.shard`), and add cross-connection evidence only after every record
is in (SPEC §5), so the records are the same as one process makes. This package is an
edge of the pipeline: the core never imports it.
"""
