"""DTLS handshake fragments of one side, reassembled into TLS handshake messages.

What it does: :class:`FragmentAssembler` reads the fragments a plaintext handshake record
carries (RFC 6347 §4.2.2: msg_type, uint24 length, uint16 message_seq, uint24
fragment_offset, uint24 fragment_length, then the fragment), joins them per message_seq
by offset, and hands each complete message to the TLS layer's body parsers
(:mod:`analyzer.tls.handshake`, with the DTLS forms of ClientHello and
HelloVerifyRequest from :mod:`analyzer.tls.hello`). Each fragment is classed:

- ``NEW``: it brought bytes not held before (a message it completes is returned);
- ``RESENT``: its bytes were all held already and equal, or its message was complete
  already: a retransmission (RFC 6347 §4.2.4), counted by the caller, never emitted twice;
- ``BAD``: it was dropped, with an anomaly (absurd offset or length, a message_seq reused
  with another type or length, overlapping bytes that differ, a limit).

A complete message whose message_seq was seen with another type, length or body is a new
message (a stateless server restarting its numbering, a client starting over), not a
retransmission. Memory is what was received, never what a header announces: partial
messages hold their pieces (``MAX_DTLS_PARTIAL_*``, ``MAX_DTLS_PIECES``), complete ones
only a digest (``MAX_DTLS_MESSAGES_KEPT``).

What it does not do: records, epochs, ChangeCipherSpec or encrypted Finished (the
association, :mod:`analyzer.dtls.parser`); order messages by message_seq (they are handed
on as they complete, in wire order, as Wireshark shows them); judge the order of
messages (the engine's state machine).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import partial

from analyzer.anomalies import Anomaly
from analyzer.limits import (
    MAX_DTLS_MESSAGES_KEPT,
    MAX_DTLS_PARTIAL_BYTES,
    MAX_DTLS_PARTIAL_MESSAGES,
    MAX_DTLS_PIECES,
    MAX_HANDSHAKE_MESSAGE,
)
from analyzer.tls.enums import HandshakeType
from analyzer.tls.events import HandshakeMsg, ParseAnomaly
from analyzer.tls.handshake import handshake_events
from analyzer.tls.hello import parse_client_hello, parse_hello_verify_request
from analyzer.tls.messages import ClientHello, HelloVerifyRequest

FRAGMENT_HEADER = 12
"""msg_type (1) + length (3) + message_seq (2) + fragment_offset (3) + fragment_length (3)."""


class Fate(Enum):
    """What became of one fragment."""

    NEW = "new"
    RESENT = "resent"
    BAD = "bad"


@dataclass(frozen=True, slots=True, kw_only=True)
class Placed:
    """One fragment read from a record, and what became of it."""

    fate: Fate
    msg_type: int
    seq: int
    """message_seq."""
    offset: int
    """fragment_offset."""
    size: int
    """Fragment header and body bytes."""
    whole: bool
    """The fragment is the whole message (offset 0, the message's full length)."""
    events: list[HandshakeMsg | ParseAnomaly]
    """The message it completed (with its anomalies), or why it was dropped."""


_DTLS_BODIES: dict[int, Callable[[bytes], ClientHello | HelloVerifyRequest | ParseAnomaly]] = {
    HandshakeType.client_hello: partial(parse_client_hello, dtls=True),
    HandshakeType.hello_verify_request: parse_hello_verify_request,
}
"""Bodies whose DTLS form differs from TLS's; the rest go to the TLS layer as they are."""


def message_events(msg_type: int, body: bytes, fragments: int) -> list[HandshakeMsg | ParseAnomaly]:
    """Events for one whole DTLS handshake message: its anomalies first, then the message."""
    parse = _DTLS_BODIES.get(msg_type)
    if parse is None:
        return handshake_events(msg_type, body, fragments)
    name = HandshakeType(msg_type).name
    parsed = parse(body)
    if isinstance(parsed, ParseAnomaly):
        problem = ParseAnomaly(anomaly=parsed.anomaly, detail=f"{name}: {parsed.detail}")
        return [problem, HandshakeMsg(msg_type=msg_type, length=len(body), records=fragments)]
    events: list[HandshakeMsg | ParseAnomaly] = [
        ParseAnomaly(anomaly=anomaly, detail=name) for anomaly in parsed.anomalies
    ]
    events.append(
        HandshakeMsg(msg_type=msg_type, length=len(body), parsed=parsed, records=fragments)
    )
    return events


def _digest(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=8).digest()


class _Partial:
    """One message being reassembled: disjoint pieces sorted by offset."""

    __slots__ = ("fragments", "held", "length", "msg_type", "pieces", "starts")

    def __init__(self, msg_type: int, length: int) -> None:
        self.msg_type = msg_type
        self.length = length
        self.starts: list[int] = []
        self.pieces: list[bytearray] = []
        self.held = 0
        self.fragments = 0
        """Fragments that brought new bytes (the message's ``records`` count)."""

    def gaps(self, start: int, data: bytes) -> tuple[list[tuple[int, bytes]], bool]:
        """The parts of ``data`` (at ``start``) not held yet, and whether the held parts
        it overlaps differ from it."""
        end = start + len(data)
        missing: list[tuple[int, bytes]] = []
        differ = False
        pos = start
        i = max(bisect.bisect_right(self.starts, start) - 1, 0)
        while i < len(self.starts) and pos < end:
            s = self.starts[i]
            piece = self.pieces[i]
            e = s + len(piece)
            i += 1
            if e <= pos:
                continue
            if s >= end:
                break
            if s > pos:
                missing.append((pos, data[pos - start : s - start]))
            lo, hi = max(s, pos), min(e, end)
            if piece[lo - s : hi - s] != data[lo - start : hi - start]:
                differ = True
            pos = hi
        if pos < end:
            missing.append((pos, data[pos - start :]))
        return missing, differ

    def put(self, missing: list[tuple[int, bytes]]) -> None:
        """Place the missing parts, joining pieces that touch (in-order fragments make
        one growing piece)."""
        starts, pieces = self.starts, self.pieces
        for start, data in missing:
            i = bisect.bisect_left(starts, start)
            if i and starts[i - 1] + len(pieces[i - 1]) == start:
                i -= 1
                pieces[i] += data
            else:
                starts.insert(i, start)
                pieces.insert(i, bytearray(data))
            if i + 1 < len(starts) and starts[i] + len(pieces[i]) == starts[i + 1]:
                pieces[i] += pieces.pop(i + 1)
                del starts[i + 1]
            self.held += len(data)
        self.fragments += 1

    def body(self) -> bytes:
        return bytes(self.pieces[0]) if len(self.pieces) == 1 else b"".join(self.pieces)


class FragmentAssembler:
    """Reassembles one side's plaintext handshake messages (RFC 6347 §4.2.3)."""

    __slots__ = ("_done", "_partial")

    def __init__(self) -> None:
        self._partial: dict[int, _Partial] = {}
        """message_seq -> message being reassembled."""
        self._done: dict[int, tuple[int, int, bytes]] = {}
        """message_seq -> (msg_type, length, digest of the body) of complete messages."""

    @property
    def buffered(self) -> int:
        """Fragment bytes held for partial messages."""
        return sum(p.held for p in self._partial.values())

    @property
    def incomplete(self) -> int:
        """Messages that never arrived whole: those still partial, and the message_seq
        numbers below the highest seen that never came at all (a lost datagram took the
        whole message). Numbers past ``MAX_DTLS_MESSAGES_KEPT`` are not counted as gaps:
        no real flight has that many messages."""
        seen = self._done.keys() | self._partial.keys()
        if not seen:
            return 0
        top = max(seen)
        missing = top + 1 - len(seen) if top < MAX_DTLS_MESSAGES_KEPT else 0
        return len(self._partial) + max(missing, 0)

    def add_record(self, fragment: bytes) -> tuple[list[Placed], ParseAnomaly | None]:
        """Read every fragment of one handshake record: what became of each (its
        message_seq and offset are the key by which the caller tells one retransmitted
        flight from the next), and the anomaly that stopped reading the record, if any."""
        results: list[Placed] = []
        pos, end = 0, len(fragment)
        while pos < end:
            if end - pos < FRAGMENT_HEADER:
                detail = f"{end - pos} bytes left in the record, a fragment header wanted"
                return results, ParseAnomaly(anomaly=Anomaly.DTLS_BAD_FRAGMENT, detail=detail)
            head = fragment[pos : pos + FRAGMENT_HEADER]
            msg_type = head[0]
            length = int.from_bytes(head[1:4])
            seq = int.from_bytes(head[4:6])
            offset = int.from_bytes(head[6:9])
            frag_length = int.from_bytes(head[9:12])
            start = pos + FRAGMENT_HEADER
            if frag_length > end - start:
                detail = f"message_seq {seq}: fragment of {frag_length} bytes, {end - start} left"
                return results, ParseAnomaly(anomaly=Anomaly.DTLS_BAD_FRAGMENT, detail=detail)
            data = fragment[start : start + frag_length]
            pos = start + frag_length
            fate, events = self._fragment(msg_type, length, seq, offset, data)
            size = FRAGMENT_HEADER + frag_length
            whole = offset == 0 and frag_length == length
            results.append(
                Placed(
                    fate=fate, msg_type=msg_type, seq=seq, offset=offset, size=size,
                    whole=whole, events=events,
                )
            )
        return results, None

    def _fragment(
        self, msg_type: int, length: int, seq: int, offset: int, data: bytes
    ) -> tuple[Fate, list[HandshakeMsg | ParseAnomaly]]:
        if length > MAX_HANDSHAKE_MESSAGE:
            return _bad(Anomaly.HANDSHAKE_TOO_LONG, f"message_seq {seq}: {length} bytes")
        if offset + len(data) > length:
            detail = f"message_seq {seq}: bytes {offset}..{offset + len(data)} of {length}"
            return _bad(Anomaly.DTLS_BAD_FRAGMENT, detail)
        if not data and length:
            return Fate.NEW, []  # an empty fragment of a non-empty message: nothing to place
        done = self._done.get(seq)
        whole = offset == 0 and len(data) == length
        if done is not None and done[:2] == (msg_type, length):
            # a copy of a complete message, unless it comes whole with another body
            same = not whole or done[2] == _digest(data)
            if same:
                return Fate.RESENT, []
        partial_msg = self._partial.get(seq)
        if partial_msg is None:
            if whole:
                return self._complete(seq, msg_type, data, 1)
            if len(self._partial) >= MAX_DTLS_PARTIAL_MESSAGES:
                return _bad(Anomaly.DTLS_REASSEMBLY_LIMIT, f"{len(self._partial)} partial messages")
            partial_msg = _Partial(msg_type, length)
        elif (partial_msg.msg_type, partial_msg.length) != (msg_type, length):
            detail = (
                f"message_seq {seq}: type {partial_msg.msg_type} of {partial_msg.length} bytes,"
                f" then type {msg_type} of {length}"
            )
            return _bad(Anomaly.DTLS_BAD_FRAGMENT, detail)
        missing, differ = partial_msg.gaps(offset, data)
        events: list[HandshakeMsg | ParseAnomaly] = []
        if differ:
            detail = (
                f"message_seq {seq}: bytes {offset}..{offset + len(data)} sent twice, differently"
            )
            events.append(ParseAnomaly(anomaly=Anomaly.DTLS_FRAGMENT_MISMATCH, detail=detail))
        if not missing and length:
            return (Fate.BAD if differ else Fate.RESENT), events
        added = sum(len(piece) for _, piece in missing)
        if (
            self.buffered + added > MAX_DTLS_PARTIAL_BYTES
            or len(partial_msg.starts) + len(missing) > MAX_DTLS_PIECES
        ):
            return _bad(Anomaly.DTLS_REASSEMBLY_LIMIT, f"message_seq {seq}: {added} more bytes")
        partial_msg.put(missing)
        if partial_msg.held < length:
            self._partial[seq] = partial_msg
            return Fate.NEW, events
        self._partial.pop(seq, None)
        fate, completed = self._complete(seq, msg_type, partial_msg.body(), partial_msg.fragments)
        return fate, events + completed

    def _complete(
        self, seq: int, msg_type: int, body: bytes, fragments: int
    ) -> tuple[Fate, list[HandshakeMsg | ParseAnomaly]]:
        if seq not in self._done and len(self._done) >= MAX_DTLS_MESSAGES_KEPT:
            return _bad(Anomaly.DTLS_REASSEMBLY_LIMIT, f"{len(self._done)} messages already")
        self._done[seq] = (msg_type, len(body), _digest(body))
        return Fate.NEW, message_events(msg_type, body, fragments)


def _bad(anomaly: Anomaly, detail: str) -> tuple[Fate, list[HandshakeMsg | ParseAnomaly]]:
    return Fate.BAD, [ParseAnomaly(anomaly=anomaly, detail=detail)]
