"""The handshake state machine, as data.

How to read it: each direction of a connection remembers the last plaintext handshake
step it took (``None`` before its first). ``CLIENT_NEXT[prev]`` / ``SERVER_NEXT[prev]``
list the steps that may follow; a step not listed is recorded as the anomaly
``unexpected_message`` and processed anyway (we observe, we are not a party to the
handshake). Steps are handshake message types (RFC 8446 §4 / RFC 5246 §7.4 numbers) plus
two pseudo-steps: ``CCS`` (a ChangeCipherSpec record) and ``FIN`` (the first encrypted
handshake record after this direction's CCS, i.e. its Finished, TLS ≤ 1.2).

The joint rules, which need both directions, live in the handshake core
(:mod:`analyzer.handshake.core`): a server may not speak before a ClientHello; TLS 1.3
makes everything after the ServerHello opaque; established needs both sides' Finished.

``LETTER`` is Zeek's ``ssl_history`` alphabet (scripts/base/protocols/ssl/main.zeek):
client letters upper case, server letters lower case. ``STAGE_OF`` maps a step to the
``stage`` it proves (SPEC §3).
"""

from __future__ import annotations

from typing import Final

from analyzer.record import STAGES
from analyzer.tls.enums import HandshakeType as H

CCS: Final = -1
FIN: Final = -2

Step = int | None

# What may follow what, per direction (TLS 1.0-1.3; TLS 1.3 stops at the ServerHello on
# the server side and at the ClientHello/CCS on the client side, the rest being encrypted).
CLIENT_NEXT: Final[dict[Step, frozenset[int]]] = {
    None: frozenset({H.client_hello}),
    # after a ClientHello: a second one (after HelloRetryRequest or renegotiation), the
    # client certificate flight, a CCS (resumption, or TLS 1.3 compatibility mode)
    H.client_hello: frozenset({H.client_hello, H.certificate, H.client_key_exchange, CCS}),
    H.certificate: frozenset({H.client_key_exchange}),
    H.client_key_exchange: frozenset({H.certificate_verify, CCS}),
    H.certificate_verify: frozenset({CCS}),
    CCS: frozenset({FIN, H.client_hello}),  # TLS 1.3: CCS before the second ClientHello
    FIN: frozenset(),
}

SERVER_NEXT: Final[dict[Step, frozenset[int]]] = {
    None: frozenset(
        {H.server_hello, H.hello_retry_request, H.hello_request, H.hello_verify_request}
    ),
    H.hello_request: frozenset({H.server_hello}),
    # DTLS (RFC 6347 §4.2.1): a HelloVerifyRequest asks the client for its cookie; a
    # server may send another when the second ClientHello's cookie does not verify.
    H.hello_verify_request: frozenset({H.server_hello, H.hello_verify_request}),
    H.hello_retry_request: frozenset({H.server_hello, CCS}),
    H.server_hello: frozenset(
        {
            H.certificate,
            H.server_key_exchange,  # anonymous / PSK suites
            H.certificate_request,
            H.server_hello_done,
            H.new_session_ticket,  # resumption with a fresh ticket
            H.server_hello,  # a HelloRetryRequest parsed as a ServerHello form
            CCS,
        }
    ),
    H.certificate: frozenset(
        {H.certificate_status, H.server_key_exchange, H.certificate_request, H.server_hello_done}
    ),
    H.certificate_status: frozenset(
        {H.server_key_exchange, H.certificate_request, H.server_hello_done}
    ),
    H.server_key_exchange: frozenset({H.certificate_request, H.server_hello_done}),
    H.certificate_request: frozenset({H.server_hello_done}),
    H.server_hello_done: frozenset({H.new_session_ticket, CCS}),
    H.new_session_ticket: frozenset({CCS}),
    CCS: frozenset({FIN, H.server_hello}),  # TLS 1.3: CCS right after a HelloRetryRequest
    FIN: frozenset(),
}

LETTER: Final[dict[int, str]] = {
    H.hello_request: "h",
    H.client_hello: "c",
    H.server_hello: "s",
    H.hello_verify_request: "v",
    H.new_session_ticket: "t",
    H.end_of_early_data: "e",
    H.hello_retry_request: "j",
    H.encrypted_extensions: "o",
    H.certificate: "x",
    H.server_key_exchange: "k",
    H.certificate_request: "r",
    H.server_hello_done: "n",
    H.certificate_verify: "y",
    H.client_key_exchange: "g",
    H.finished: "f",
    H.certificate_url: "w",
    H.certificate_status: "u",
    H.supplemental_data: "a",
    H.key_update: "p",
    H.message_hash: "m",
}
UNKNOWN_LETTER: Final = "z"
CCS_LETTER: Final = "i"
ALERT_LETTER: Final = "l"
HEARTBEAT_LETTER: Final = "b"
HRR_LETTER: Final = "j"

STAGE_OF: Final[dict[tuple[bool, int], str]] = {
    (True, H.client_hello): "client_hello",
    (False, H.server_hello): "server_hello",
    (False, H.hello_retry_request): "server_hello",
    (False, H.certificate): "server_certificate",
    (False, H.server_hello_done): "server_done",
    (True, FIN): "client_finished",
}
"""(sent by the client?, step) -> the stage that step proves."""

STAGE_ORDER: Final[dict[str, int]] = {s: i for i, s in enumerate(STAGES)}
"""Stages in the order a handshake reaches them (SPEC §3 ``stage``)."""


def letter(is_client: bool, step: int) -> str:
    """Zeek's history letter for a handshake message type (or CCS) from one side."""
    ch = CCS_LETTER if step == CCS else LETTER.get(step, UNKNOWN_LETTER)
    return ch.upper() if is_client else ch


def allowed(is_client: bool, prev: Step, step: int) -> bool:
    """Whether ``step`` may follow ``prev`` in this direction."""
    table = CLIENT_NEXT if is_client else SERVER_NEXT
    return step in table.get(prev, frozenset())
