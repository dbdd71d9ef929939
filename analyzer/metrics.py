"""Prometheus metrics of a live capture (``tlsa live --metrics-port 9464``).

:class:`LiveMetrics` is fed every record ``tlsa live`` gives and reads the capture's
packet and drop counts when Prometheus scrapes ``/metrics`` (served by
``prometheus-client`` on its own thread, from a registry of its own):

- ``tlsa_handshakes_total{outcome, failure, server}``: records per outcome, failure
  category (``none`` when not failed) and server (``address:port``). Label values stay
  bounded: the ``limits.METRICS_TOP_SERVERS`` servers with the most handshakes so far have
  their own value, every other server is ``other``. Membership is decided at each scrape,
  so when a server enters the top N its series starts and ``other`` goes down by its
  count (Prometheus reads that as a counter reset of ``other``).
- ``tlsa_handshake_duration_seconds``: histogram of ``handshake_time`` (ClientHello to
  established or to failure), by outcome.
- ``tlsa_records_total``: records given.
- ``tlsa_packets_total``: packets captured.
- ``tlsa_kernel_dropped_packets``: packets the kernel or dumpcap dropped, once dumpcap
  has reported them (it does when the capture stops); absent before.

Not here: the capture (:mod:`analyzer.live`), HTTP details (prometheus-client's).
Server counts are kept for at most ``limits.METRICS_TRACKED_SERVERS`` servers.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from analyzer.limits import METRICS_TOP_SERVERS, METRICS_TRACKED_SERVERS
from analyzer.record import HandshakeRecord

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

HANDSHAKE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                     10.0, 30.0)
"""Seconds: a LAN handshake takes about a millisecond, a failing one can wait for a
timeout of tens of seconds."""

OTHER = "other"


class PacketSource(Protocol):
    """What the metrics read from the capture (:class:`analyzer.sources.live.LiveSource`)."""

    @property
    def frames(self) -> int: ...

    dropped: int | None


def server_label(r: HandshakeRecord) -> str:
    return f"[{r.server_ip}]:{r.server_port}" if ":" in r.server_ip else (
        f"{r.server_ip}:{r.server_port}"
    )


class LiveMetrics:
    """Metrics of one live session, in a registry of their own."""

    def __init__(self, *, top_servers: int = METRICS_TOP_SERVERS) -> None:
        from prometheus_client import CollectorRegistry, Histogram
        from prometheus_client import Counter as Total

        self.top_servers = top_servers
        self.registry: CollectorRegistry = CollectorRegistry()
        self.source: PacketSource | None = None
        self._lock = threading.Lock()
        self._by_server: Counter[str] = Counter()
        self._handshakes: Counter[tuple[str, str, str]] = Counter()
        self._records = Total("tlsa_records", "Handshake records given.",
                                registry=self.registry)
        self._duration = Histogram(
            "tlsa_handshake_duration_seconds",
            "ClientHello to established, or to the failure, in seconds.",
            ["outcome"],
            buckets=HANDSHAKE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_Collector(self))
        self._server: Any = None

    def observe(self, r: HandshakeRecord) -> None:
        """Count one record."""
        server = server_label(r)
        with self._lock:
            if server in self._by_server or len(self._by_server) < METRICS_TRACKED_SERVERS:
                self._by_server[server] += 1
            else:
                server = OTHER
            self._handshakes[(r.outcome, r.failure or "none", server)] += 1
        self._records.inc()
        if r.handshake_time is not None:
            self._duration.labels(r.outcome).observe(r.handshake_time)

    def top(self) -> set[str]:
        ranked = sorted(self._by_server.items(), key=lambda kv: (-kv[1], kv[0]))
        return {name for name, _ in ranked[: self.top_servers]}

    def handshakes(self) -> dict[tuple[str, str, str], int]:
        """Counts per (outcome, failure, server label), servers outside the top N merged
        into ``other``."""
        with self._lock:
            top = self.top()
            out: Counter[tuple[str, str, str]] = Counter()
            for (outcome, failure, server), n in self._handshakes.items():
                out[(outcome, failure, server if server in top else OTHER)] += n
        return dict(out)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` (0: any free port) from a daemon thread;
        returns the port. Raises OSError when the address cannot be bound."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return int(server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Collector:
    """Values computed at scrape time: handshakes with bounded server labels, packets,
    drops."""

    def __init__(self, metrics: LiveMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        family = CounterMetricFamily(
            "tlsa_handshakes",
            "TLS handshakes by outcome, failure category and server (top servers by volume; "
            "the rest as other).",
            labels=["outcome", "failure", "server"],
        )
        for (outcome, failure, server), n in sorted(self.metrics.handshakes().items()):
            family.add_metric([outcome, failure, server], n)
        yield family
        source = self.metrics.source
        if source is None:
            return
        yield CounterMetricFamily("tlsa_packets", "Packets captured.", value=source.frames)
        if source.dropped is not None:
            yield GaugeMetricFamily(
                "tlsa_kernel_dropped_packets",
                "Packets the kernel or dumpcap dropped (reported when the capture stops).",
                value=source.dropped,
            )

    def describe(self) -> Iterator[Any]:
        return iter(())
