"""The diagnosis rules: one ordered table over finished records (SPEC §4).

How to read it: :data:`RULES` is tried top to bottom; the first rule that returns a
:class:`~analyzer.diagnosis.verdict.Verdict` decides ``outcome``, ``failure``,
``failure_side``, ``reason``, ``remedy`` and ``inferred``. Rules read only the record
(facts) and the certificate status computed from it; they never reach back into parser
state. Each reason cites at least two facts from the wire; each remedy says what to change
and the command that confirms it, filled in with this connection's host, port and server
name.

The rules live in modules by the family of evidence they read: :mod:`.transport` (TCP
refusals, ICMP, resets, silence), :mod:`.quic` (QUIC's own: Initials unanswered, Version
Negotiation, CONNECTION_CLOSE, a close hidden in Handshake packets), :mod:`.dtls` (the
cookie exchange, flights resent over UDP), :mod:`.proxy`, :mod:`.plaintext`,
:mod:`.alerts`, :mod:`.certificates`, :mod:`.negotiation` (versions and ciphers),
:mod:`.inference` (TLS 1.3 without keys) and :mod:`.closes`. Shared wording is
:mod:`analyzer.diagnosis.wording`.

Order matters: definitive evidence first (TCP refusal, proxy status, plaintext where TLS
was expected, a plaintext alert), then heuristics over encrypted records and closes, then
the capture-quality rule that blames nobody (``incomplete``), then who gave up.
"""

from __future__ import annotations

from analyzer.diagnosis.rules.alerts import rule_alert
from analyzer.diagnosis.rules.closes import (
    rule_aborted,
    rule_client_gave_up_first,
    rule_fallback,
    rule_incomplete,
)
from analyzer.diagnosis.rules.dtls import (
    rule_dtls_cookie_unanswered,
    rule_dtls_final_flight_unanswered,
    rule_dtls_flight_lost,
    rule_dtls_no_server_hello,
)
from analyzer.diagnosis.rules.inference import (
    rule_encrypted_alert,
    rule_established,
    rule_tls13_inferred,
)
from analyzer.diagnosis.rules.negotiation import rule_version_abort
from analyzer.diagnosis.rules.plaintext import (
    rule_client_not_tls,
    rule_no_client_hello,
    rule_server_not_tls,
    rule_starttls_refused,
)
from analyzer.diagnosis.rules.proxy import rule_proxy_closed, rule_proxy_status
from analyzer.diagnosis.rules.quic import (
    rule_quic_alert,
    rule_quic_close,
    rule_quic_hidden_close,
    rule_quic_no_answer,
    rule_quic_refused,
    rule_quic_version,
)
from analyzer.diagnosis.rules.transport import (
    rule_icmp_unreachable,
    rule_no_server_response,
    rule_reset,
    rule_tcp_no_answer,
    rule_tcp_refused,
    rule_udp_no_answer,
    rule_udp_refused,
)
from analyzer.diagnosis.verdict import Rule

RULES: tuple[Rule, ...] = (
    rule_established,  # inference: established, unless a visible reason fails it
    rule_icmp_unreachable,  # transport
    rule_tcp_refused,
    rule_tcp_no_answer,
    rule_quic_refused,  # quic: Initials refused or unanswered, in QUIC's words
    rule_quic_no_answer,
    rule_udp_refused,  # transport: the same for DTLS
    rule_udp_no_answer,
    rule_dtls_cookie_unanswered,  # dtls
    rule_dtls_flight_lost,
    rule_dtls_no_server_hello,
    rule_dtls_final_flight_unanswered,
    rule_quic_version,  # quic: Version Negotiation without a common version
    rule_proxy_status,  # proxy
    rule_client_not_tls,  # plaintext
    rule_server_not_tls,
    rule_quic_alert,  # quic: a CRYPTO_ERROR close, judged by its alert
    rule_alert,  # alerts: the plaintext alert that ended it
    rule_quic_close,  # quic: any other CONNECTION_CLOSE, named
    rule_tls13_inferred,  # inference: TLS 1.3 without keys
    rule_encrypted_alert,
    rule_quic_hidden_close,  # quic: a close inside encrypted Handshake packets (inferred)
    rule_version_abort,  # negotiation
    rule_proxy_closed,  # proxy
    rule_client_gave_up_first,  # closes
    rule_reset,  # transport
    rule_starttls_refused,  # plaintext
    rule_incomplete,  # closes: the capture cut it, nobody is blamed
    rule_no_server_response,  # transport
    rule_aborted,  # closes
    rule_no_client_hello,  # plaintext
    rule_fallback,  # closes
)
