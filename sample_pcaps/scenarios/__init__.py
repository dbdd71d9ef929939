"""Sample-capture scenarios, one module per stack; importing this registers them all.

``REGISTRY`` lists them in README order: servers first (nginx, OpenSSL and its alerts,
Python, GnuTLS), then private PKIs, the network, proxies (HTTP CONNECT, SOCKS), capture
formats, STARTTLS, the browser and the incident.
"""

from . import (
    browser,
    formats,
    gnutls,
    incident,
    keyed,
    network,
    nginx,
    openssl,
    private_pki,
    python_ssl,
    smtp,
    socks,
    squid,
    tls_alerts,
)
from .base import REGISTRY, Ctx, Expect, Scenario, ScenarioError

_MODULES = (nginx, openssl, tls_alerts, python_ssl, gnutls, private_pki, network, squid, socks,
            formats, smtp, browser, incident, keyed)
_rank = {m.__name__: n for n, m in enumerate(_MODULES)}
_ordered = sorted(REGISTRY.values(), key=lambda s: _rank.get(s.run.__module__, len(_rank)))
REGISTRY.clear()
REGISTRY.update((s.name, s) for s in _ordered)

__all__ = ["REGISTRY", "Ctx", "Expect", "Scenario", "ScenarioError"]
