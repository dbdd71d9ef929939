"""TLS records of real captures, decrypted with a key log, next to what tshark shows.

What it does: :func:`tcp_streams` gives each TCP connection of a capture as its two byte
streams (the project's :class:`analyzer.flows.Reassembler` behind dpkt's packets);
:func:`transcript` walks both streams record by record the way the handshake engine is
meant to use :mod:`analyzer.tls.decrypt` (keys at the ServerHello; TLS ≤ 1.2 encrypted
after each side's ChangeCipherSpec; TLS 1.3 records of type application_data opened with
the handshake keys until that side's Finished, then the application keys, KeyUpdate
honoured) and lists, per direction, the handshake message types and alert descriptions,
plaintext and decrypted, in wire order. :func:`tshark_transcripts` gives the same two
lists per connection as ``tshark -o tls.keylog_file:FILE`` shows them.

What it does not do: judge anything; tests compare the two.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt

from analyzer.flows import Reassembler
from analyzer.tls import HandshakeReassembler, RecordReader, parse_alert
from analyzer.tls.decrypt import (
    DirectionKeys,
    Epoch,
    Failed,
    FailReason,
    NoKeys,
    SessionKeys,
    Tls13Decryptor,
    session_keys,
)
from analyzer.tls.enums import ContentType, ExtensionType, HandshakeType, ProtocolVersion
from analyzer.tls.events import Alert, HandshakeMsg
from analyzer.tls.keylog import KeyLog
from analyzer.tls.messages import ClientHello, ServerHello
from analyzer.tls.records import Record
from tests.harness.capture import packets


@dataclass(slots=True)
class TcpStream:
    """One TCP connection: both directions' bytes in order."""

    client_port: int
    server_port: int
    client: bytearray = field(default_factory=bytearray)
    server: bytearray = field(default_factory=bytearray)


def tcp_streams(path: Path) -> list[TcpStream]:
    """The TCP connections of a capture whose SYN was captured, in SYN order."""
    found: dict[tuple[int, int], tuple[TcpStream, Reassembler, Reassembler]] = {}
    for _ts, ip in packets(path):
        tcp = ip.data
        if not isinstance(tcp, dpkt.tcp.TCP):
            continue
        flags = tcp.flags
        if flags & dpkt.tcp.TH_SYN and not flags & dpkt.tcp.TH_ACK:
            client, server = Reassembler(), Reassembler()
            client.syn(tcp.seq)
            found[(tcp.sport, tcp.dport)] = (TcpStream(tcp.sport, tcp.dport), client, server)
            continue
        key = (tcp.sport, tcp.dport)
        from_client = key in found
        entry = found.get(key) or found.get((tcp.dport, tcp.sport))
        if entry is None:
            continue
        stream, client, server = entry
        mine, theirs = (client, server) if from_client else (server, client)
        if flags & dpkt.tcp.TH_SYN:
            mine.syn(tcp.seq)
        if tcp.data:
            (stream.client if from_client else stream.server).extend(mine.data(tcp.seq, tcp.data))
        if flags & dpkt.tcp.TH_ACK:
            theirs.peer_ack(tcp.ack)
    return [entry[0] for entry in found.values()]


def records(data: bytes | bytearray, *, is_client: bool) -> Iterator[Record]:
    reader = RecordReader(is_client=is_client)
    reader.feed(bytes(data))
    while (item := reader.next()) is not None:
        if isinstance(item, Record):
            yield item


@dataclass(slots=True)
class Side:
    """What one direction showed: ("handshake", type) and ("alert", description)."""

    handshake: list[int] = field(default_factory=list)
    alerts: list[int] = field(default_factory=list)
    decrypted: int = 0
    """Records opened successfully."""
    skipped: int = 0
    """Encrypted records not worth opening (application data)."""
    failures: list[FailReason] = field(default_factory=list)


@dataclass(slots=True)
class Transcript:
    client: Side
    server: Side
    keys: SessionKeys | NoKeys | None
    hello: ServerHello | None


def _hellos(stream: TcpStream) -> tuple[ClientHello | None, ServerHello | None]:
    """The ClientHello and the ServerHello that is not a HelloRetryRequest."""
    client_hello = server_hello = None
    for data, is_client in ((stream.client, True), (stream.server, False)):
        reassembler = HandshakeReassembler()
        for record in records(data, is_client=is_client):
            if record.content_type != ContentType.handshake:
                continue
            for event in reassembler.add(record.fragment):
                if not isinstance(event, HandshakeMsg):
                    continue
                if isinstance(event.parsed, ClientHello) and client_hello is None:
                    client_hello = event.parsed
                elif isinstance(event.parsed, ServerHello) and not event.parsed.is_hrr:
                    server_hello = event.parsed
            if server_hello is not None and not is_client:
                break
    return client_hello, server_hello


class _Direction:
    """Record handling of one direction, as the engine is meant to do it."""

    def __init__(self, keys: DirectionKeys | None, version: int, side: Side) -> None:
        self.keys = keys
        self.tls13 = version == ProtocolVersion.TLSv1_3
        self.side = side
        self.plain = HandshakeReassembler()
        self.secret = HandshakeReassembler()
        self.current = keys.handshake if keys is not None and self.tls13 else None
        self.encrypted = False
        """TLS ≤ 1.2: after this side's ChangeCipherSpec."""
        self.stopped = False

    def record(self, record: Record) -> None:
        ctype = record.content_type
        protected = ctype == ContentType.application_data if self.tls13 else self.encrypted
        if protected:
            self._encrypted(record)
        elif ctype == ContentType.handshake:
            self._messages(self.plain.add(record.fragment))
        elif ctype == ContentType.alert:
            self._alert(record.fragment)
        elif ctype == ContentType.change_cipher_spec and not self.tls13:
            self.encrypted = True
            self.current = self.keys.application if self.keys is not None else None

    def _encrypted(self, record: Record) -> None:
        decryptor = self.current
        if decryptor is None or self.stopped:
            return
        if not decryptor.worth_opening(record.content_type, len(record.fragment)):
            decryptor.skip(record.fragment)
            self.side.skipped += 1
            return
        result = decryptor.decrypt(record.content_type, record.version, record.fragment)
        if isinstance(result, Failed):
            self.side.failures.append(result.reason)
            self.stopped = True
            return
        self.side.decrypted += 1
        if result.content_type == ContentType.handshake:
            self._messages(self.secret.add(result.data))
        elif result.content_type == ContentType.alert:
            self._alert(result.data)

    def _messages(self, events: Iterable[object]) -> None:
        for event in events:
            if not isinstance(event, HandshakeMsg):
                continue
            self.side.handshake.append(event.msg_type)
            current = self.current
            if event.msg_type == HandshakeType.finished and self.tls13 and self.keys is not None \
                    and current is not None and current.epoch is Epoch.HANDSHAKE:
                self.current = self.keys.application
            elif event.msg_type == HandshakeType.key_update and isinstance(current, Tls13Decryptor):
                current.key_update()

    def _alert(self, fragment: bytes) -> None:
        alert = parse_alert(fragment)
        if isinstance(alert, Alert) and alert.description is not None:
            self.side.alerts.append(alert.description)


def transcript(stream: TcpStream, keylog: KeyLog) -> Transcript:
    """Both directions of ``stream``, decrypted where ``keylog`` allows."""
    client_hello, server_hello = _hellos(stream)
    keys: SessionKeys | NoKeys | None = None
    version = 0
    if client_hello is not None and server_hello is not None:
        version = server_hello.version
        etm = any(e.type == ExtensionType.encrypt_then_mac for e in server_hello.extensions)
        keys = session_keys(
            keylog.lookup(client_hello.random), version=version,
            cipher_suite=server_hello.cipher_suite, client_random=client_hello.random,
            server_random=server_hello.random, encrypt_then_mac=etm,
        )
    client, server = Side(), Side()
    for data, is_client, side in ((stream.client, True, client), (stream.server, False, server)):
        direction_keys = None
        if isinstance(keys, SessionKeys):
            direction_keys = keys.client if is_client else keys.server
        direction = _Direction(direction_keys, version, side)
        for record in records(data, is_client=is_client):
            direction.record(record)
    return Transcript(client=client, server=server, keys=keys, hello=server_hello)


def tshark_transcripts(
    path: Path, keylog_file: Path, server_ports: Iterable[int]
) -> dict[tuple[int, int], tuple[Side, Side]]:
    """Per (client port, server port): (client side, server side) as tshark decrypts them
    with the file (a client port alone can serve two connections of one capture),
    the server ports decoded as TLS whatever tshark would guess (4420 is NVMe/TCP's).

    Empty when tshark is missing.
    """
    if shutil.which("tshark") is None:
        return {}
    argv = ["tshark", "-n", "-r", str(path), "-o", f"tls.keylog_file:{keylog_file}"]
    for port in server_ports:
        argv += ["-d", f"tcp.port=={port},tls"]
    argv += ["-Y", "tls", "-T", "fields", "-E", "separator=/t", "-e", "tcp.srcport",
            "-e", "tcp.dstport", "-e", "tcp.flags.syn", "-e", "tls.handshake.type",
            "-e", "tls.alert_message.desc"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    result: dict[tuple[int, int], tuple[Side, Side]] = {}
    servers = _server_ports(path)
    for line in out.splitlines():
        sport, dport, _syn, types, alerts = (line.split("\t") + [""] * 5)[:5]
        src, dst = int(sport), int(dport)
        from_client = (dst, src) in servers
        pair = (src, dst) if from_client else (dst, src)
        sides = result.setdefault(pair, (Side(), Side()))
        side = sides[0] if from_client else sides[1]
        side.handshake.extend(int(t) for t in types.split(",") if t)
        side.alerts.extend(int(a) for a in alerts.split(",") if a)
    return result


def _server_ports(path: Path) -> set[tuple[int, int]]:
    """(server port, client port) of every connection whose SYN was captured."""
    pairs = set()
    for _ts, ip in packets(path):
        tcp = ip.data
        if isinstance(tcp, dpkt.tcp.TCP) and tcp.flags & dpkt.tcp.TH_SYN \
                and not tcp.flags & dpkt.tcp.TH_ACK:
            pairs.add((tcp.dport, tcp.sport))
    return pairs
