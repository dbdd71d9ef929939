"""Sample-capture scenarios, one module per stack; importing this registers them all."""

from . import browser, formats, gnutls, incident, network, nginx, openssl, python_ssl, smtp, squid  # noqa: F401
from .base import REGISTRY, Ctx, Expect, Scenario, ScenarioError

__all__ = ["REGISTRY", "Ctx", "Expect", "Scenario", "ScenarioError"]
