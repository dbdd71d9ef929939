"""Decryption against published vectors, and properties of every decryptor.

Vectors: RFC 8448 §3 (the simple 1-RTT TLS 1.3 handshake): traffic keys and IVs from
the RFC's traffic secrets, then its protected records (the server's encrypted flight,
the client's Finished, the NewSessionTicket, application data both ways, both
close_notify alerts) decrypt to what the RFC shows. The TLS 1.2 PRF with SHA-256 and
SHA-384 (the vectors posted to the IETF TLS list, used by many libraries) and the
TLS 1.0/1.1 MD5/SHA-1 PRF (the "PRF Testvector" of the same era).

TLS 1.2 AEAD and CBC records are sealed here by a small sealer written from the RFCs;
real-stack records of every kind are in ``tests/test_decrypt_real.py``. Properties: any
changed byte gives ``Failed`` and leaves the sequence number; random fragments never
raise; random plaintexts round-trip.
"""

from __future__ import annotations

import hmac
import os

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from analyzer.tls import HandshakeReassembler
from analyzer.tls.decrypt import (
    CbcDecryptor,
    Decryptor,
    Epoch,
    Failed,
    FailReason,
    NoKeys,
    NoKeysReason,
    Plain,
    SessionKeys,
    Tls12AeadDecryptor,
    Tls13Decryptor,
    session_keys,
)
from analyzer.tls.enums import ContentType, HandshakeType
from analyzer.tls.events import HandshakeMsg
from analyzer.tls.keylog import Secrets
from analyzer.tls.keyschedule import (
    key_block,
    prf_tls10,
    prf_tls12,
    tls13_next_secret,
    tls13_traffic_keys,
)
from analyzer.tls.suites import BulkCipher, SuiteParams, suite_params


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# -- RFC 8448 §3: a simple 1-RTT handshake, TLS_AES_128_GCM_SHA256 -------------------------

CLIENT_HS_SECRET = h("b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21")
SERVER_HS_SECRET = h("b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38")
CLIENT_AP_SECRET = h("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5")
SERVER_AP_SECRET = h("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643")
RFC8448 = Secrets(client_handshake_traffic=CLIENT_HS_SECRET,
                  server_handshake_traffic=SERVER_HS_SECRET,
                  client_traffic_0=CLIENT_AP_SECRET, server_traffic_0=SERVER_AP_SECRET)

# {server} send handshake record: complete record (679 octets): header 17 03 03 02 a2,
# then EncryptedExtensions, Certificate, CertificateVerify, Finished (657 octets), the
# inner content type 16 and the 16-byte tag.
SERVER_FLIGHT = h("""
    17 03 03 02 a2 d1 ff 33 4a 56 f5 bf f6 59 4a 07 cc 87 b5 80 23 3f 50 0f 45 e4 89 e7
    f3 3a f3 5e df 78 69 fc f4 0a a4 0a a2 b8 ea 73 f8 48 a7 ca 07 61 2e f9 f9 45 cb 96
    0b 40 68 90 51 23 ea 78 b1 11 b4 29 ba 91 91 cd 05 d2 a3 89 28 0f 52 61 34 aa dc 7f
    c7 8c 4b 72 9d f8 28 b5 ec f7 b1 3b d9 ae fb 0e 57 f2 71 58 5b 8e a9 bb 35 5c 7c 79
    02 07 16 cf b9 b1 18 3e f3 ab 20 e3 7d 57 a6 b9 d7 47 76 09 ae e6 e1 22 a4 cf 51 42
    73 25 25 0c 7d 0e 50 92 89 44 4c 9b 3a 64 8f 1d 71 03 5d 2e d6 5b 0e 3c dd 0c ba e8
    bf 2d 0b 22 78 12 cb b3 60 98 72 55 cc 74 41 10 c4 53 ba a4 fc d6 10 92 8d 80 98 10
    e4 b7 ed 1a 8f d9 91 f0 6a a6 24 82 04 79 7e 36 a6 a7 3b 70 a2 55 9c 09 ea d6 86 94
    5b a2 46 ab 66 e5 ed d8 04 4b 4c 6d e3 fc f2 a8 94 41 ac 66 27 2f d8 fb 33 0e f8 19
    05 79 b3 68 45 96 c9 60 bd 59 6e ea 52 0a 56 a8 d6 50 f5 63 aa d2 74 09 96 0d ca 63
    d3 e6 88 61 1e a5 e2 2f 44 15 cf 95 38 d5 1a 20 0c 27 03 42 72 96 8a 26 4e d6 54 0c
    84 83 8d 89 f7 2c 24 46 1a ad 6d 26 f5 9e ca ba 9a cb bb 31 7b 66 d9 02 f4 f2 92 a3
    6a c1 b6 39 c6 37 ce 34 31 17 b6 59 62 22 45 31 7b 49 ee da 0c 62 58 f1 00 d7 d9 61
    ff b1 38 64 7e 92 ea 33 0f ae ea 6d fa 31 c7 a8 4d c3 bd 7e 1b 7a 6c 71 78 af 36 87
    90 18 e3 f2 52 10 7f 24 3d 24 3d c7 33 9d 56 84 c8 b0 37 8b f3 02 44 da 8c 87 c8 43
    f5 e5 6e b4 c5 e8 28 0a 2b 48 05 2c f9 3b 16 49 9a 66 db 7c ca 71 e4 59 94 26 f7 d4
    61 e6 6f 99 88 2b d8 9f c5 08 00 be cc a6 2d 6c 74 11 6d bd 29 72 fd a1 fa 80 f8 5d
    f8 81 ed be 5a 37 66 89 36 b3 35 58 3b 59 91 86 dc 5c 69 18 a3 96 fa 48 a1 81 d6 b6
    fa 4f 9d 62 d5 13 af bb 99 2f 2b 99 2f 67 f8 af e6 7f 76 91 3f a3 88 cb 56 30 c8 ca
    01 e0 c6 5d 11 c6 6a 1e 2a c4 c8 59 77 b7 c7 a6 99 9b bf 10 dc 35 ae 69 f5 51 56 14
    63 6c 0b 9b 68 c1 9e d2 e3 1c 0b 3b 66 76 30 38 eb ba 42 f3 b3 8e dc 03 99 f3 a9 f2
    3f aa 63 97 8c 31 7f c9 fa 66 a7 3f 60 f0 50 4d e9 3b 5b 84 5e 27 55 92 c1 23 35 ee
    34 0b bc 4f dd d5 02 78 40 16 e4 b3 be 7e f0 4d da 49 f4 b4 40 a3 0c b5 d2 af 93 98
    28 fd 4a e3 79 4e 44 f9 4d f5 a6 31 ed e4 2c 17 19 bf da bf 02 53 fe 51 75 be 89 8e
    75 0e dc 53 37 0d 2b""")
# {client} send handshake record: complete record (58 octets): the client's Finished.
CLIENT_FINISHED = h("""
    17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9
    3c 7a 4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4
    05 46""")
# {server} send handshake record: complete record (227 octets): the NewSessionTicket.
NEW_SESSION_TICKET = h("""
    17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24 0e 6c ff ac
    11 6e 95 d4 1d 6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a 01 59 40 25 2f 55 71 3e
    06 1d c1 3e 07 88 91 a3 8e fb cf 57 53 ad 8e f1 70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca
    7f 2b 9f a1 b6 c0 d4 a3 d0 3f 75 e0 9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43
    9b 29 99 ce 13 06 46 15 13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84 00 25
    db 2f 0a 77 f8 1b 5a b0 5b 94 c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac 87 aa c3
    47 d1 43 f9 60 5d 64 f6 50 db 4d 02 3e 70 e9 52 ca 49 fe 51 37 12 1c 74 bc 26 97 68
    7e 24 87 46 d6 df 35 30 05 f3 bc e1 86 96 12 9c 81 53 55 6b 3b 6c 67 79 b3 7b f1 59
    85 68 4f""")
# {client} and {server} send application_data record (72 octets each): 00 01 .. 31.
CLIENT_DATA = h("""
    17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa
    66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2
    97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4""")
SERVER_DATA = h("""
    17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f
    82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2
    1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d""")
# {client} and {server} send alert record (24 octets): close_notify.
CLIENT_CLOSE = h("17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3")
SERVER_CLOSE = h("17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9")


def keys_8448() -> SessionKeys:
    keys = session_keys(RFC8448, version=0x0304, cipher_suite=0x1301,
                        client_random=bytes(32), server_random=bytes(32))
    assert isinstance(keys, SessionKeys)
    return keys


def open_record(decryptor: Decryptor | None, record: bytes) -> Plain | Failed:
    assert decryptor is not None
    return decryptor.decrypt(record[0], int.from_bytes(record[1:3]), record[5:])


def message_types(plain: Plain | Failed) -> list[int]:
    assert isinstance(plain, Plain) and plain.content_type == ContentType.handshake
    events = HandshakeReassembler().add(plain.data)
    return [e.msg_type for e in events if isinstance(e, HandshakeMsg)]


def test_rfc8448_traffic_keys_and_ivs() -> None:
    # {server} derive write traffic keys for handshake data / application data, and the
    # client's (RFC 8448 §3).
    cases = [
        (SERVER_HS_SECRET, "3fce516009c21727d0f2e4e86ee403bc", "5d313eb2671276ee13000b30"),
        (CLIENT_HS_SECRET, "dbfaa693d1762c5b666af5d950258d01", "5bd3c71b836e0b76bb73265f"),
        (SERVER_AP_SECRET, "9f02283b6c9c07efc26bb9f2ac92e356", "cf782b88dd83549aadf1e984"),
        (CLIENT_AP_SECRET, "17422dda596ed5d9acd890e3c63f5051", "5b78923dee08579033e523d9"),
    ]
    for secret, key, iv in cases:
        assert tls13_traffic_keys("sha256", secret, 16) == (h(key), h(iv))


def test_rfc8448_server_flight_decrypts_to_its_four_messages() -> None:
    keys = keys_8448()
    plain = open_record(keys.server.handshake, SERVER_FLIGHT)
    assert isinstance(plain, Plain) and len(plain.data) == 657
    assert message_types(plain) == [
        HandshakeType.encrypted_extensions, HandshakeType.certificate,
        HandshakeType.certificate_verify, HandshakeType.finished,
    ]
    # EncryptedExtensions (40 octets) as the RFC constructs it.
    assert plain.data[:40] == h("080000240022000a00140012001d00170018001901000101010201030104"
                                "001c00024001000000 00".replace(" ", ""))
    assert keys.server.handshake is not None and keys.server.handshake.seq == 1
    assert repr(plain) == "Plain(content_type=22)"


def test_rfc8448_every_protected_record() -> None:
    keys = keys_8448()
    open_record(keys.server.handshake, SERVER_FLIGHT)
    assert message_types(open_record(keys.client.handshake, CLIENT_FINISHED)) == [
        HandshakeType.finished]
    assert message_types(open_record(keys.server.application, NEW_SESSION_TICKET)) == [
        HandshakeType.new_session_ticket]
    for decryptor, record in ((keys.client.application, CLIENT_DATA),
                              (keys.server.application, SERVER_DATA)):
        assert open_record(decryptor, record) == Plain(
            content_type=ContentType.application_data, data=bytes(range(50)))
    for decryptor, record in ((keys.client.application, CLIENT_CLOSE),
                              (keys.server.application, SERVER_CLOSE)):
        assert open_record(decryptor, record) == Plain(content_type=ContentType.alert,
                                                        data=b"\x01\x00")


@pytest.mark.parametrize("at", [5, 100, len(SERVER_FLIGHT) - 17, len(SERVER_FLIGHT) - 1, 0, 2])
def test_rfc8448_a_changed_byte_fails_and_keeps_the_sequence_number(at: int) -> None:
    keys = keys_8448()
    damaged = bytearray(SERVER_FLIGHT)
    damaged[at] ^= 0x01  # ciphertext, tag, or the header's type and version (the AAD)
    assert open_record(keys.server.handshake, bytes(damaged)) == Failed(
        reason=FailReason.BAD_TAG)
    assert keys.server.handshake is not None and keys.server.handshake.seq == 0
    assert isinstance(open_record(keys.server.handshake, SERVER_FLIGHT), Plain)


def test_rfc8448_records_out_of_order_fail() -> None:
    keys = keys_8448()
    # The NewSessionTicket is sequence number 0 of the server's application keys, the
    # data record number 1: opened first, the data record does not authenticate.
    assert open_record(keys.server.application, SERVER_DATA) == Failed(reason=FailReason.BAD_TAG)
    assert message_types(open_record(keys.server.application, NEW_SESSION_TICKET)) == [
        HandshakeType.new_session_ticket]


def test_which_tls13_records_are_worth_opening() -> None:
    keys = keys_8448()
    handshake, application = keys.server.handshake, keys.server.application
    assert handshake is not None and application is not None
    assert handshake.worth_opening(ContentType.application_data, 16401)
    assert application.worth_opening(ContentType.application_data, 222)  # a ticket
    assert application.worth_opening(ContentType.application_data, 8192)
    assert not application.worth_opening(ContentType.application_data, 8193)  # bulk data
    for plaintext_type in (ContentType.change_cipher_spec, ContentType.alert):
        assert not handshake.worth_opening(plaintext_type, 2)
    application.skip(b"")
    assert application.seq == 1  # a skipped record still takes its number
    assert open_record(application, SERVER_DATA) == Plain(
        content_type=ContentType.application_data, data=bytes(range(50)))


def test_tls13_key_update_moves_to_the_next_secret_from_zero() -> None:
    suite = suite_params(0x1301)
    assert suite is not None
    decryptor = Tls13Decryptor(suite, Epoch.APPLICATION, SERVER_AP_SECRET)
    open_record(decryptor, NEW_SESSION_TICKET)
    decryptor.key_update()
    assert decryptor.seq == 0
    following = tls13_next_secret("sha256", SERVER_AP_SECRET)
    assert following != SERVER_AP_SECRET and len(following) == 32
    sealed = seal_tls13(suite, following, 0, ContentType.alert, b"\x01\x00")
    assert open_record(decryptor, sealed) == Plain(content_type=ContentType.alert,
                                                   data=b"\x01\x00")


def test_tls13_an_inner_plaintext_of_zeros_has_no_content_type() -> None:
    suite = suite_params(0x1303)
    assert suite is not None
    secret = bytes(range(32))
    record = seal_tls13(suite, secret, 0, 0, b"\x00" * 10)
    decryptor = Tls13Decryptor(suite, Epoch.HANDSHAKE, secret)
    assert open_record(decryptor, record) == Failed(reason=FailReason.NO_CONTENT_TYPE)
    # Zeros of the content stay; zeros after the content type are padding (RFC 8446 §5.4).
    padded = seal_tls13(suite, secret, 0, ContentType.handshake, b"\x14\x00\x00\x00",
                        padding=100)
    assert open_record(decryptor, padded) == Plain(content_type=ContentType.handshake,
                                                   data=b"\x14\x00\x00\x00")


def test_decryptor_reprs_hold_no_keys() -> None:
    keys = keys_8448()
    text = repr(keys)
    assert "Tls13Decryptor(TLS_AES_128_GCM_SHA256, handshake, seq=0)" in text
    for secret in (CLIENT_HS_SECRET, SERVER_HS_SECRET, h("3fce516009c21727d0f2e4e86ee403bc")):
        assert secret.hex()[:8] not in text and repr(secret)[:12] not in text


# -- session_keys: why there are no keys ---------------------------------------------------


@pytest.mark.parametrize(("secrets", "version", "suite", "reason"), [
    (None, 0x0304, 0x1301, NoKeysReason.NO_SECRETS),
    (Secrets(master_secret=bytes(48)), 0x0304, 0x1301, NoKeysReason.MISSING_SECRETS),
    (Secrets(client_traffic_0=bytes(48)), 0x0304, 0x1301, NoKeysReason.MISSING_SECRETS),
    (RFC8448, 0x0303, 0xC02F, NoKeysReason.MISSING_SECRETS),
    (RFC8448, 0x0304, 0xC02F, NoKeysReason.UNSUPPORTED_SUITE),
    (RFC8448, 0x0304, 0x1306, NoKeysReason.UNSUPPORTED_SUITE),  # AEGIS
    (Secrets(master_secret=bytes(48)), 0x0303, 0x1301, NoKeysReason.UNSUPPORTED_SUITE),
    (Secrets(master_secret=bytes(48)), 0x0303, 0x0005, NoKeysReason.UNSUPPORTED_SUITE),  # RC4
    (Secrets(master_secret=bytes(48)), 0x0301, 0xC02F, NoKeysReason.UNSUPPORTED_SUITE),
    (Secrets(master_secret=bytes(48)), 0x0300, 0x002F, NoKeysReason.UNSUPPORTED_VERSION),
    (Secrets(master_secret=bytes(48)), 0x7F1C, 0x1301, NoKeysReason.UNSUPPORTED_VERSION),
    (Secrets(master_secret=bytes(48)), 0xFEFD, 0xC02F, NoKeysReason.UNSUPPORTED_VERSION),
])
def test_no_keys_and_why(secrets: Secrets | None, version: int, suite: int,
                         reason: NoKeysReason) -> None:
    result = session_keys(secrets, version=version, cipher_suite=suite,
                          client_random=bytes(32), server_random=bytes(32))
    assert isinstance(result, NoKeys) and result.reason is reason
    assert "\n" not in result.detail


def test_tls13_with_some_secrets_gets_only_those_epochs() -> None:
    secrets = Secrets(client_handshake_traffic=CLIENT_HS_SECRET,
                      server_handshake_traffic=SERVER_HS_SECRET)
    keys = session_keys(secrets, version=0x0304, cipher_suite=0x1301,
                        client_random=bytes(32), server_random=bytes(32))
    assert isinstance(keys, SessionKeys)
    assert keys.client.handshake is not None and keys.client.application is None
    assert keys.server.handshake is not None and keys.server.application is None


# -- the PRFs --------------------------------------------------------------------------------


def test_tls12_prf_sha256_vector() -> None:
    out = prf_tls12("sha256", h("9bbe436ba940f017b17652849a71db35"), b"test label",
                    h("a0ba9f936cda311827a6f796ffd5198c"), 100)
    assert out == h("e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
                    "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
                    "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
                    "87347b66")


def test_tls12_prf_sha384_vector() -> None:
    out = prf_tls12("sha384", h("b80b733d6ceefcdc71566ea48e5567df"), b"test label",
                    h("cd665cf6a8447dd6ff8b27555edb7465"), 148)
    assert out == h("7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
                    "e9ca0faa60be9fe34f82b1233c9146a0e534cb400fed2700884f9dc236f80edd"
                    "8bfa961144c9e8d792eca722a7b32fc3d416d473ebc2c5fd4abfdad05d918425"
                    "9b5bf8cd4d90fa0d31e2dec479e4f1a26066f2eea9a69236a3e52655c9e9aee6"
                    "91c8f3a26854308d5eaa3be85e0990703d73e56f")


def test_tls10_prf_vector() -> None:
    out = prf_tls10(b"\xab" * 48, b"PRF Testvector", b"\xcd" * 64, 104)
    assert out == h("d3d4d1e349b5d515044666d51de32bab258cb521b6b053463e354832fd976754"
                    "443bcf9a296519bc289abcbc1187e4ebd31e602353776c408aafb74cbc85eff6"
                    "9255f9788faa184cbb957a9819d84a5d7eb006eb459d3ae8de9810454b8b2d8f"
                    "1afbc655a8c9a013")


def test_key_block_partition_and_repr() -> None:
    block = key_block(prf_hash="sha256", master_secret=bytes(48), server_random=b"s" * 32,
                      client_random=b"c" * 32, mac_length=20, key_length=16, iv_length=4)
    whole = prf_tls12("sha256", bytes(48), b"key expansion", b"s" * 32 + b"c" * 32, 80)
    assert block.client_mac + block.server_mac + block.client_key + block.server_key \
        + block.client_iv + block.server_iv == whole
    assert repr(block) == "KeyBlock()"


# -- suites ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "cipher", "key", "iv", "tag", "mac", "hash_name"), [
    (0x1301, BulkCipher.AES_GCM, 16, 12, 16, None, "sha256"),
    (0x1302, BulkCipher.AES_GCM, 32, 12, 16, None, "sha384"),
    (0x1303, BulkCipher.CHACHA20_POLY1305, 32, 12, 16, None, "sha256"),
    (0x1304, BulkCipher.AES_CCM, 16, 12, 16, None, "sha256"),
    (0x1305, BulkCipher.AES_CCM_8, 16, 12, 8, None, "sha256"),
    (0xC02F, BulkCipher.AES_GCM, 16, 4, 16, None, "sha256"),
    (0xC030, BulkCipher.AES_GCM, 32, 4, 16, None, "sha384"),
    (0xCCA8, BulkCipher.CHACHA20_POLY1305, 32, 12, 16, None, "sha256"),
    (0xC0A0, BulkCipher.AES_CCM_8, 16, 4, 8, None, "sha256"),
    (0xC09C, BulkCipher.AES_CCM, 16, 4, 16, None, "sha256"),
    (0x002F, BulkCipher.AES_CBC, 16, 16, 0, "sha1", "sha256"),
    (0xC027, BulkCipher.AES_CBC, 16, 16, 0, "sha256", "sha256"),
    (0xC028, BulkCipher.AES_CBC, 32, 16, 0, "sha384", "sha384"),
    (0x000A, BulkCipher.TRIPLE_DES_CBC, 24, 8, 0, "sha1", "sha256"),
])
def test_suite_parameters(code: int, cipher: BulkCipher, key: int, iv: int, tag: int,
                          mac: str | None, hash_name: str) -> None:
    suite = suite_params(code)
    assert suite is not None
    assert (suite.cipher, suite.key_length, suite.iv_length, suite.tag_length, suite.mac,
            suite.hash_name) == (cipher, key, iv, tag, mac, hash_name)
    assert suite.tls13 is (code >> 8 == 0x13)


@pytest.mark.parametrize("code", [0x0000, 0x0004, 0x0005, 0x0009, 0x0041, 0x1306, 0xC09A,
                                  0xCC13, 0xFEFF, 0x00FF, 0xABCD, 0x010080, 0xC0B4])
def test_suites_that_cannot_be_decrypted(code: int) -> None:
    assert suite_params(code) is None


def test_quic_reads_the_tls13_suite() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    aes, chacha = suite_params(0x1301), suite_params(0x1303)
    assert aes is not None and chacha is not None
    assert (aes.hash_name, aes.aead_class, aes.key_length) == ("sha256", AESGCM, 16)
    assert (chacha.hash_name, chacha.aead_class, chacha.key_length) == (
        "sha256", ChaCha20Poly1305, 32)


# -- a sealer written from the RFCs, for TLS 1.2 records -------------------------------------


def seal_tls13(suite: SuiteParams, secret: bytes, seq: int, ctype: int, data: bytes,
               padding: int = 0) -> bytes:
    key, iv = tls13_traffic_keys(suite.hash_name, secret, suite.key_length)
    aead_class = suite.aead_class
    assert aead_class is not None
    aead = (aead_class(key, tag_length=suite.tag_length)  # type: ignore[call-arg]
            if suite.cipher is BulkCipher.AES_CCM_8 else aead_class(key))
    inner = data + bytes([ctype]) + bytes(padding)
    length = len(inner) + suite.tag_length
    header = b"\x17\x03\x03" + length.to_bytes(2)
    nonce = (int.from_bytes(iv) ^ seq).to_bytes(12)
    return header + aead.encrypt(nonce, inner, header)


VERSION = {"tls10": 0x0301, "tls11": 0x0302, "tls12": 0x0303}


class Sealer:
    """The sending side of one direction: TLS 1.2 AEAD or TLS 1.0-1.2 CBC."""

    def __init__(self, suite: SuiteParams, version: int, mac: bytes, key: bytes, iv: bytes,
                 etm: bool) -> None:
        self.suite, self.version, self.mac_key, self.key, self.iv = suite, version, mac, key, iv
        self.etm = etm
        self.seq = 0

    def seal(self, ctype: int, data: bytes) -> bytes:
        fragment = self._aead(ctype, data) if self.suite.cipher.is_aead else self._cbc(ctype, data)
        self.seq += 1
        return fragment

    def _aead(self, ctype: int, data: bytes) -> bytes:
        suite = self.suite
        aead_class = suite.aead_class
        assert aead_class is not None
        aead = (aead_class(self.key, tag_length=suite.tag_length)  # type: ignore[call-arg]
                if suite.cipher in (BulkCipher.AES_CCM, BulkCipher.AES_CCM_8)
                else aead_class(self.key))
        aad = self.seq.to_bytes(8) + bytes([ctype]) + self.version.to_bytes(2) \
            + len(data).to_bytes(2)
        if suite.explicit_nonce_length:
            explicit = os.urandom(8)
            return explicit + aead.encrypt(self.iv + explicit, data, aad)
        nonce = (int.from_bytes(self.iv) ^ self.seq).to_bytes(12)
        return aead.encrypt(nonce, data, aad)

    def _mac(self, ctype: int, data: bytes) -> bytes:
        header = self.seq.to_bytes(8) + bytes([ctype]) + self.version.to_bytes(2)
        return hmac.digest(self.mac_key, header + len(data).to_bytes(2) + data,
                           self.suite.mac or "sha1")

    def _cbc(self, ctype: int, data: bytes) -> bytes:
        size = self.suite.block_size
        algorithm = (algorithms.AES(self.key) if self.suite.cipher is BulkCipher.AES_CBC
                     else TripleDES(self.key))
        chained = self.version == 0x0301
        iv = self.iv if chained else os.urandom(size)
        body = data if self.etm else data + self._mac(ctype, data)
        pad = size - (len(body) + 1) % size
        encryptor = Cipher(algorithm, modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(body + bytes([pad]) * (pad + 1)) + encryptor.finalize()
        if chained:
            self.iv = ciphertext[-size:]
        protected = ciphertext if chained else iv + ciphertext
        if self.etm:
            protected += self._mac(ctype, protected)
        return protected


CONFIGS = [
    ("tls12", 0xC02F, False), ("tls12", 0xC030, False), ("tls12", 0xCCA8, False),
    ("tls12", 0xC09C, False), ("tls12", 0xC0A0, False), ("tls12", 0xC0A1, False),
    ("tls12", 0xC027, False), ("tls12", 0xC027, True), ("tls12", 0xC028, False),
    ("tls12", 0x002F, False), ("tls12", 0x002F, True), ("tls12", 0x000A, False),
    ("tls11", 0x0035, False), ("tls11", 0x0035, True), ("tls10", 0x002F, False),
    ("tls10", 0x002F, True), ("tls10", 0x000A, False), ("tls10", 0x000A, True),
]
CONFIG_IDS = [f"{v}-{c:04x}{'-etm' if e else ''}" for v, c, e in CONFIGS]
MASTER = bytes(range(48))
CLIENT_RANDOM, SERVER_RANDOM = b"C" * 32, b"S" * 32


def pair(config: tuple[str, int, bool]) -> tuple[Sealer, Decryptor]:
    """A client sealer and the decryptor session_keys builds for it."""
    name, code, etm = config
    version = VERSION[name]
    keys = session_keys(Secrets(master_secret=MASTER), version=version, cipher_suite=code,
                        client_random=CLIENT_RANDOM, server_random=SERVER_RANDOM,
                        encrypt_then_mac=etm)
    assert isinstance(keys, SessionKeys) and keys.client.application is not None
    suite = keys.suite
    cbc_iv = suite.block_size if version == 0x0301 else 0
    block = key_block(prf_hash=suite.hash_name if version == 0x0303 else None,
                      master_secret=MASTER, server_random=SERVER_RANDOM,
                      client_random=CLIENT_RANDOM, mac_length=suite.mac_length,
                      key_length=suite.key_length,
                      iv_length=suite.iv_length if suite.cipher.is_aead else cbc_iv)
    sealer = Sealer(suite, version, block.client_mac, block.client_key, block.client_iv, etm)
    return sealer, keys.client.application


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_tls12_records_round_trip_in_sequence(config: tuple[str, int, bool]) -> None:
    sealer, decryptor = pair(config)
    expected = isinstance(decryptor, Tls12AeadDecryptor) is sealer.suite.cipher.is_aead
    assert expected and (isinstance(decryptor, CbcDecryptor) is not sealer.suite.cipher.is_aead)
    messages = [
        (ContentType.handshake, b"\x14\x00\x00\x0c" + bytes(12)),  # Finished
        (ContentType.application_data, b"x" * 1000),
        (ContentType.application_data, b""),
        (ContentType.alert, b"\x01\x00"),  # close_notify
    ]
    for ctype, data in messages:
        fragment = sealer.seal(ctype, data)
        if not decryptor.worth_opening(ctype, len(fragment)):
            assert ctype == ContentType.application_data
            decryptor.skip(fragment)
            continue
        assert decryptor.decrypt(ctype, sealer.version, fragment) == Plain(
            content_type=ctype, data=data)
    assert decryptor.seq == len(messages)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_tls12_any_changed_byte_fails_without_moving_on(config: tuple[str, int, bool]) -> None:
    sealer, decryptor = pair(config)
    fragment = sealer.seal(ContentType.alert, b"\x02\x28")
    for at in range(len(fragment)):
        damaged = bytearray(fragment)
        damaged[at] ^= 0x80
        result = decryptor.decrypt(ContentType.alert, sealer.version, bytes(damaged))
        assert isinstance(result, Failed), at
        assert decryptor.seq == 0
    # The header is authenticated too: another content type or version fails.
    assert isinstance(decryptor.decrypt(ContentType.handshake, sealer.version, fragment), Failed)
    assert isinstance(decryptor.decrypt(ContentType.alert, 0x0300, fragment), Failed)
    assert decryptor.decrypt(ContentType.alert, sealer.version, fragment) == Plain(
        content_type=ContentType.alert, data=b"\x02\x28")


def test_cbc_padding_and_mac_failures_are_told_apart() -> None:
    sealer, decryptor = pair(("tls12", 0x002F, False))
    fragment = sealer.seal(ContentType.alert, b"\x02\x28")
    damaged = bytearray(fragment)
    damaged[-17] ^= 0x01  # the previous block: flips a bit of the padding length
    assert decryptor.decrypt(ContentType.alert, 0x0303, bytes(damaged)) == Failed(
        reason=FailReason.BAD_PADDING)
    damaged = bytearray(fragment)
    damaged[16] ^= 0x01  # first ciphertext block: garbles content and MAC
    assert decryptor.decrypt(ContentType.alert, 0x0303, bytes(damaged)) == Failed(
        reason=FailReason.BAD_MAC)
    assert decryptor.decrypt(ContentType.alert, 0x0303, fragment[:-1]) == Failed(
        reason=FailReason.BAD_LENGTH)


def test_tls10_skipped_records_still_chain_the_iv() -> None:
    for etm in (False, True):
        sealer, decryptor = pair(("tls10", 0x002F, etm))
        decryptor.skip(sealer.seal(ContentType.application_data, b"bulk" * 100))
        decryptor.skip(sealer.seal(ContentType.application_data, b"more"))
        assert decryptor.decrypt(ContentType.alert, 0x0301, sealer.seal(
            ContentType.alert, b"\x01\x00")) == Plain(content_type=ContentType.alert,
                                                      data=b"\x01\x00")


# -- properties ------------------------------------------------------------------------------


def all_decryptors() -> list[Decryptor]:
    found: list[Decryptor] = [pair(config)[1] for config in CONFIGS]
    for code in (0x1301, 0x1302, 0x1303, 0x1304, 0x1305):
        suite = suite_params(code)
        assert suite is not None
        found.append(Tls13Decryptor(suite, Epoch.HANDSHAKE, bytes(48 if code == 0x1302 else 32)))
    return found


@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=300))
def test_random_fragments_never_raise_and_never_open(ctype: int, version: int,
                                                     fragment: bytes) -> None:
    for decryptor in all_decryptors():
        result = decryptor.decrypt(ctype, version, fragment)
        assert isinstance(result, Failed) and decryptor.seq == 0


def test_oversized_fragments_fail() -> None:
    for decryptor in all_decryptors():
        assert decryptor.decrypt(23, 0x0303, bytes(18433)) == Failed(reason=FailReason.TOO_LONG)
        assert isinstance(decryptor.decrypt(23, 0x0303, b""), Failed)


@given(st.sampled_from(range(len(CONFIGS))), st.binary(max_size=2000), st.binary(max_size=40))
def test_a_sealed_record_opens_and_with_any_suffix_fails(index: int, data: bytes,
                                                         suffix: bytes) -> None:
    sealer, decryptor = pair(CONFIGS[index])
    fragment = sealer.seal(ContentType.handshake, data)
    if suffix:
        assert isinstance(decryptor.decrypt(ContentType.handshake, sealer.version,
                                            fragment + suffix), Failed)
    assert decryptor.decrypt(ContentType.handshake, sealer.version, fragment) == Plain(
        content_type=ContentType.handshake, data=data)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_every_prefix_of_a_record_fails(config: tuple[str, int, bool]) -> None:
    sealer, decryptor = pair(config)
    fragment = sealer.seal(ContentType.handshake, b"\x14\x00\x00\x0c" + bytes(12))
    for cut in range(len(fragment)):
        assert isinstance(decryptor.decrypt(ContentType.handshake, sealer.version,
                                            fragment[:cut]), Failed), cut
    assert isinstance(decryptor.decrypt(ContentType.handshake, sealer.version, fragment), Plain)


def test_every_prefix_of_the_rfc8448_flight_fails() -> None:
    keys = keys_8448()
    for cut in range(5, len(SERVER_FLIGHT), 7):
        assert isinstance(open_record(keys.server.handshake, SERVER_FLIGHT[:cut]), Failed)
    assert isinstance(open_record(keys.server.handshake, SERVER_FLIGHT), Plain)
