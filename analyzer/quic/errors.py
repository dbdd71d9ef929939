"""QUIC transport error codes (RFC 9000 §20.1, IANA "QUIC Transport Error Codes"), named as
in the registry, and how a CONNECTION_CLOSE's code reads as text.

What it does: :class:`TransportError` names the codes of RFC 9000 §20.1 and RFC 9368 §10
(``VERSION_NEGOTIATION_ERROR``); :func:`error_name` gives the name of any code, including
the CRYPTO_ERROR range 0x0100-0x01ff (RFC 9001 §4.8: ``CRYPTO_ERROR`` and the TLS alert).

What it does not do: judge (a code is a fact; :mod:`analyzer.diagnosis.rules.quic` says what
it means for the handshake) or name application (HTTP/3) codes.
"""

from __future__ import annotations

from enum import IntEnum

from analyzer.quic.events import CRYPTO_ERROR_FIRST, CRYPTO_ERROR_LAST
from analyzer.tls.names import alert_name


class TransportError(IntEnum):
    """RFC 9000 §20.1; RFC 9368 §10."""

    NO_ERROR = 0x00
    INTERNAL_ERROR = 0x01
    CONNECTION_REFUSED = 0x02
    FLOW_CONTROL_ERROR = 0x03
    STREAM_LIMIT_ERROR = 0x04
    STREAM_STATE_ERROR = 0x05
    FINAL_SIZE_ERROR = 0x06
    FRAME_ENCODING_ERROR = 0x07
    TRANSPORT_PARAMETER_ERROR = 0x08
    CONNECTION_ID_LIMIT_ERROR = 0x09
    PROTOCOL_VIOLATION = 0x0A
    INVALID_TOKEN = 0x0B
    APPLICATION_ERROR = 0x0C
    CRYPTO_BUFFER_EXCEEDED = 0x0D
    KEY_UPDATE_ERROR = 0x0E
    AEAD_LIMIT_REACHED = 0x0F
    NO_VIABLE_PATH = 0x10
    VERSION_NEGOTIATION_ERROR = 0x11


def crypto_alert(code: int) -> int | None:
    """The TLS alert a CRYPTO_ERROR code carries (RFC 9001 §4.8), else None."""
    if CRYPTO_ERROR_FIRST <= code <= CRYPTO_ERROR_LAST:
        return code - CRYPTO_ERROR_FIRST
    return None


def error_name(code: int) -> str:
    """``PROTOCOL_VIOLATION``, ``CRYPTO_ERROR (unknown_ca)``, or ``0x…`` when unnamed."""
    alert = crypto_alert(code)
    if alert is not None:
        return f"CRYPTO_ERROR ({alert_name(alert)})"
    try:
        return TransportError(code).name
    except ValueError:
        return f"0x{code:x}"
