"""Zeek's quic.log ``history``, letter for letter (Zeek's ``base/protocols/quic/main.zeek``
and the analyzer grammar ``src/analyzer/protocol/quic/QUIC.spicy`` that raises its events).

Letters (client upper case, server lower case), each added when Zeek's event fires:

====== ===================================================================================
``I``  an Initial packet (before any decryption: a forged one counts too)
``H``  a Handshake packet
``Z``  a 0-RTT packet
``R``  a Retry packet; ends Zeek's row and resets its decryption state
``S``  the ClientHello (``S``) / ServerHello (``s``) of the first handshake message of
       that side's Initial CRYPTO data, decrypted since the last reset
``C``  a CONNECTION_CLOSE (type 0x1c) frame in an Initial that Zeek decrypted; ends the row
``U``  a long header of a version Zeek does not parse (Version Negotiation included);
       ends the row
``X``  a packet whose fixed bit is 0, once some Initial was decrypted (at most 100)
``O``  the 1st, 2nd, 4th, 8th, … short-header packet of that side
====== ===================================================================================

A letter that needs an open row (``S``, ``C``, ``X``, ``O``) is dropped when the last one
ended (Zeek deletes ``c$quic``); ``I``, ``H``, ``Z``, ``R`` and ``U`` open a new row. A row
holds at most ``MAX_HISTORY`` letters. Zeek writes one quic.log line per row; this module
keeps every row and :attr:`ZeekQuicHistory.text` joins them, so one connection's record
shows all of them (a connection without Retry, close or version trouble has one row).

What it does not do: see packets (the connection parser tells it what Zeek would have
seen). It also keeps the bits of Zeek's decryption state that decide letters: which side
already sent its first handshake message (Zeek stops decrypting that side's Initials
then) and whether the client's first DCID is known (needed for the server's Initials).
Not emulated: Zeek giving up on a connection after a parse error in an earlier datagram.
"""

from __future__ import annotations

from analyzer.limits import MAX_HISTORY, MAX_QUIC_DISCARDED


class ZeekQuicHistory:
    """The history letters of one QUIC connection as Zeek builds them."""

    __slots__ = ("_discarded", "_finished", "_row", "_rows", "_short", "dcid_known",
                 "decrypted")

    def __init__(self) -> None:
        self._rows: list[str] = []
        self._row: list[str] | None = None
        self._finished = [False, False]
        """Per side (client, server): its first handshake message went to the TLS parser."""
        self._short = [0, 0]
        self._discarded = 0
        self.dcid_known = False
        """Zeek holds the client's first DCID (it decrypts server Initials only then)."""
        self.decrypted = 0
        """Initial packets Zeek decrypted (its ``total_decrypted``)."""

    @property
    def rows(self) -> tuple[str, ...]:
        """Each quic.log row Zeek would write, in order (the open one last)."""
        return (*self._rows, "".join(self._row)) if self._row is not None else tuple(self._rows)

    @property
    def text(self) -> str:
        """All rows joined: the record's ``quic_history``."""
        return "".join(self.rows)

    def _add(self, from_client: bool, letter: str, *, opens: bool) -> None:
        if self._row is None:
            if not opens:
                return
            self._row = []
        if len(self._row) < MAX_HISTORY:
            self._row.append(letter if from_client else letter.lower())

    def _end_row(self) -> None:
        if self._row is not None:
            self._rows.append("".join(self._row))
            self._row = None

    def would_decrypt(self, from_client: bool) -> bool:
        """Zeek's ``can_decrypt`` for an Initial from this side."""
        side = 0 if from_client else 1
        return not self._finished[side] and (from_client or self.dcid_known)

    def long_packet(self, from_client: bool, letter: str) -> None:
        """``I``, ``H`` or ``Z``."""
        self._add(from_client, letter, opens=True)

    def retry(self, from_client: bool) -> None:
        self._add(from_client, "R", opens=True)
        self._end_row()
        self._finished = [False, False]
        self.dcid_known = False

    def unhandled_version(self, from_client: bool) -> None:
        self._add(from_client, "U", opens=True)
        self._end_row()

    def first_message(self, from_client: bool, hello: bool) -> None:
        """The side's first handshake message completed; ``hello``: it is a ClientHello
        (client) or ServerHello (server), which makes Zeek's SSL analyzer add ``S``."""
        self._finished[0 if from_client else 1] = True
        if hello:
            self._add(from_client, "S", opens=False)

    def connection_close(self, from_client: bool) -> None:
        if self._row is not None:
            self._add(from_client, "C", opens=False)
            self._end_row()

    def discarded(self, from_client: bool) -> None:
        """A packet with the fixed bit clear: Zeek skips the rest of its datagram."""
        self._discarded += 1
        if self.decrypted > 0 and self._discarded <= MAX_QUIC_DISCARDED:
            self._add(from_client, "X", opens=False)

    def short_packet(self, from_client: bool) -> None:
        side = 0 if from_client else 1
        self._short[side] += 1
        count = self._short[side]
        if count & (count - 1) == 0:  # QUIC.spicy's threshold base 2: 1, 2, 4, 8, ...
            self._add(from_client, "O", opens=False)
