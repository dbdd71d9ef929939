"""The handshake transition table: every (direction, state, step) pair."""

from __future__ import annotations

import itertools

import pytest

from analyzer.handshake import machine
from analyzer.handshake.machine import CCS, CLIENT_NEXT, FIN, SERVER_NEXT, allowed, letter
from analyzer.tls.enums import HandshakeType as H

STEPS = [*(int(t) for t in H), CCS, FIN]

# Expected successors written out independently of the table, from RFC 5246 §7.3,
# RFC 8446 §2 and RFC 6347 §4.2.1 (DTLS cookie exchange) message flows.
CLIENT_EXPECTED = {
    None: {H.client_hello},
    H.client_hello: {H.client_hello, H.certificate, H.client_key_exchange, CCS},
    H.certificate: {H.client_key_exchange},
    H.client_key_exchange: {H.certificate_verify, CCS},
    H.certificate_verify: {CCS},
    CCS: {FIN, H.client_hello},
    FIN: set(),
}
SERVER_EXPECTED = {
    None: {H.server_hello, H.hello_retry_request, H.hello_request, H.hello_verify_request},
    H.hello_request: {H.server_hello},
    H.hello_verify_request: {H.server_hello, H.hello_verify_request},
    H.hello_retry_request: {H.server_hello, CCS},
    H.server_hello: {
        H.certificate, H.server_key_exchange, H.certificate_request, H.server_hello_done,
        H.new_session_ticket, H.server_hello, CCS,
    },
    H.certificate: {
        H.certificate_status, H.server_key_exchange, H.certificate_request, H.server_hello_done
    },
    H.certificate_status: {H.server_key_exchange, H.certificate_request, H.server_hello_done},
    H.server_key_exchange: {H.certificate_request, H.server_hello_done},
    H.certificate_request: {H.server_hello_done},
    H.server_hello_done: {H.new_session_ticket, CCS},
    H.new_session_ticket: {CCS},
    CCS: {FIN, H.server_hello},
    FIN: set(),
}


@pytest.mark.parametrize(
    ("is_client", "prev", "step"),
    [
        (c, p, s)
        for c, table in ((True, CLIENT_EXPECTED), (False, SERVER_EXPECTED))
        for p, s in itertools.product([None, *STEPS], STEPS)
    ],
)
def test_every_pair(is_client: bool, prev: int | None, step: int) -> None:
    expected = CLIENT_EXPECTED if is_client else SERVER_EXPECTED
    assert allowed(is_client, prev, step) == (step in expected.get(prev, set()))


def test_tables_cover_exactly_the_expected_states() -> None:
    assert set(CLIENT_NEXT) == set(CLIENT_EXPECTED)
    assert set(SERVER_NEXT) == set(SERVER_EXPECTED)


def test_letters_are_zeeks() -> None:
    # scripts/base/protocols/ssl/main.zeek: client letters upper case.
    assert letter(True, H.client_hello) == "C"
    assert letter(False, H.server_hello) == "s"
    assert letter(False, H.certificate) == "x"
    assert letter(False, H.server_key_exchange) == "k"
    assert letter(False, H.server_hello_done) == "n"
    assert letter(True, H.client_key_exchange) == "G"
    assert letter(True, CCS) == "I"
    assert letter(False, CCS) == "i"
    assert letter(False, H.new_session_ticket) == "t"
    assert letter(False, H.hello_retry_request) == "j"
    assert letter(False, H.certificate_request) == "r"
    assert letter(True, H.certificate_verify) == "Y"
    assert letter(False, 99) == "z"


def test_stage_order_is_spec_order() -> None:
    assert list(machine.STAGE_ORDER) == [
        "tcp_syn", "tcp_open", "client_hello", "server_hello", "server_certificate",
        "server_done", "client_finished", "established", "application_data",
    ]
