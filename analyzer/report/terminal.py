"""Terminal views (rich): the tables of ``tlsa summary`` and the connection of ``tlsa show``.

Everything taken from a capture is printed as :class:`rich.text.Text` after escaping
control characters, so neither rich markup nor ANSI sequences in an SNI or an HTTP line can
change what the terminal shows. The numbers come from :func:`analyzer.aggregate.summary`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.inventory import Certificate
from analyzer.limits import EXPIRY_WARNING_DAYS
from analyzer.record import HandshakeRecord
from analyzer.text import printable


def text(value: object, style: str = "") -> Text:
    """A terminal cell from capture data: control characters escaped, no markup."""
    if value is None:
        return Text("-", style="dim")
    return Text(printable(str(value).encode("utf-8", "surrogateescape")), style=style)


def _iso(value: str) -> str:
    return value.replace("T", " ").removesuffix("+00:00")


def _clip(value: object, limit: int = 240) -> object:
    """Long example reasons cut for the table (``tlsa show UID`` has the whole text)."""
    if isinstance(value, str) and len(value) > limit:
        return value[: limit - 1] + "…"
    return value


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _table(title: str, columns: Sequence[tuple[str, str]]) -> Table:
    """A table; each column is ``(header, justify)``; folds long cells."""
    t = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for header, justify in columns:
        t.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    return t


def print_summary(console: Console, data: Mapping[str, Any]) -> None:
    """Totals, outcomes, failure causes with an example each, worst servers, version and
    cipher mix, and the QUIC count, as rich tables."""
    n = data["connections"]
    head = Text(f"{n} TLS connection{'s' if n != 1 else ''}", style="bold")
    if n:
        head.append(f", {data['failed']} failed ({_pct(data['failure_rate'])})", style="bold red")
    captures = data.get("captures") or []
    head.append(f" in {len(captures)} capture{'s' if len(captures) != 1 else ''}")
    if data.get("start"):
        span = f", {_iso(data['start'])} to {_iso(data['end'])} UTC"
        head.append(span, style="dim")
    console.print(head)
    outcomes = _table("Outcomes", [("outcome", "left"), ("count", "right"), ("share", "right")])
    styles = {"established": "green", "failed": "red", "not_tls": "yellow", "incomplete": "dim"}
    for outcome, count in data["outcomes"].items():
        outcomes.add_row(
            Text(outcome, style=styles.get(outcome, "")), str(count), _pct(count / n if n else 0)
        )
    console.print(outcomes)
    if data["failures"]:
        causes = _table(
            "Failure causes",
            [("cause", "left"), ("count", "right"), ("share", "right"), ("side", "left"),
             ("example", "left")],
        )  # fmt: skip
        for row in data["failures"]:
            example = text(_clip(row["example"]))
            if row.get("example_uid"):
                example.append(f"  (tlsa show {row['example_uid']})", style="dim")
            causes.add_row(
                Text(row["failure"], style="bold"),
                str(row["count"]),
                _pct(row["share"]),
                text(row["failure_side"]),
                example,
            )
        console.print(causes)
    if data["worst_servers"]:
        servers = _table(
            "Servers with the most failures",
            [("server", "left"), ("SNI", "left"), ("failed", "right"), ("of", "right"),
             ("rate", "right"), ("mostly", "left")],
        )  # fmt: skip
        for row in data["worst_servers"]:
            servers.add_row(
                text(row["server"]),
                text(row["sni"]),
                str(row["failed"]),
                str(row["connections"]),
                _pct(row["failure_rate"]),
                text(row["top_failure"]),
            )
        console.print(servers)
    for title, rows, key in (
        ("Negotiated versions", data["version_mix"], "version"),
        ("Negotiated cipher suites", data["cipher_mix"], "cipher"),
    ):
        if not rows:
            continue
        mix = _table(
            title, [(key, "left"), ("connections", "right"), ("established", "right"),
                    ("failed", "right")]
        )  # fmt: skip
        for row in rows:
            mix.add_row(
                text(row[key]), str(row["connections"]), str(row["established"]), str(row["failed"])
            )
        console.print(mix)
    transports = data.get("transport_mix", [])
    if any(row["transport"] != "tcp" for row in transports):
        mix = _table(
            "Transports", [("transport", "left"), ("connections", "right"),
                           ("established", "right"), ("failed", "right")]
        )  # fmt: skip
        for row in transports:
            name = text(row["transport"])
            if row["transport"] == "quic" and data.get("quic_versions"):
                versions = ", ".join(f"{v} {n}" for v, n in data["quic_versions"].items())
                name = text(f"quic ({versions})")
            mix.add_row(
                name, str(row["connections"]), str(row["established"]), str(row["failed"])
            )
        console.print(mix)
    quic = data["udp_quic_datagrams"]
    console.print(
        Text(
            f"QUIC: {quic} UDP datagrams on port 443 belonged to no connection analyzed"
            + (" (their connection started before the capture, or they are not QUIC)."
               if quic else "."),
            style="yellow" if quic else "dim",
        )
    )


def _when(ts: float | None, *, ms: bool = True) -> str | None:
    if ts is None:
        return None
    fraction = f".{int(ts % 1 * 1000):03d}" if ms else ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + fraction + " UTC"


def _facts(title: str, facts: Sequence[tuple[str, object]]) -> Table | None:
    rows = [
        (k, v)
        for k, v in facts
        if v is not None and v != "" and not (isinstance(v, Text) and not v.plain)
    ]
    if not rows:
        return None
    t = Table(title=title, title_justify="left", title_style="bold", show_header=False)
    t.add_column("field", style="dim", no_wrap=True)
    t.add_column("value", overflow="fold")
    for k, v in rows:
        t.add_row(k, v if isinstance(v, Text) else text(v))
    return t


def print_record(console: Console, r: HandshakeRecord) -> None:
    """Everything about one connection: diagnosis, timeline, alerts, certificate, facts."""
    styles = {"established": "green", "failed": "red", "not_tls": "yellow", "incomplete": "dim"}
    head = Text(f"{r.uid}  ", style="bold")
    head.append(text(f"{r.client_ip}:{r.client_port} → {r.server_ip}:{r.server_port}"))
    head.append(f"  {_when(r.ts)}  ", style="dim")
    head.append(text(r.capture, style="dim"))
    console.print(head)
    if r.wireshark_filter:
        line = Text("Wireshark filter: ", style="dim")
        line.append(text(r.wireshark_filter))
        console.print(line, soft_wrap=True)
    verdict = Text(r.outcome, style=f"bold {styles.get(r.outcome, '')}")
    if r.failure:
        verdict.append(f": {r.failure}, ended by {r.failure_side or '-'}")
    if r.inferred:
        verdict.append(" (inferred)", style="yellow")
    diagnosis = _facts(
        "Diagnosis",
        [("outcome", verdict), ("why", r.reason), ("fix", r.remedy),
         ("warnings", ", ".join(r.warnings)), ("anomalies", ", ".join(r.anomalies))],
    )  # fmt: skip
    if diagnosis is not None:
        console.print(diagnosis)
    timeline = _table("Timeline", [("+ms", "right"), ("from", "left"), ("what", "left")])
    for e in r.timeline:
        style = "red" if e.what.startswith(("alert", "ICMP")) or e.what == "RST" else ""
        timeline.add_row(f"{e.t * 1000:.1f}", e.sender, text(e.what, style=style))
    console.print(timeline)
    if r.alerts:
        alerts = _table(
            "Alerts",
            [("+ms", "right"), ("from", "left"), ("level", "left"), ("description", "left"),
             ("code", "right"), ("encrypted", "left")],
        )  # fmt: skip
        for a in r.alerts:
            alerts.add_row(
                f"{(a.ts - r.ts) * 1000:.1f}",
                a.sender,
                text(a.level),
                text(a.description),
                text(a.code),
                "yes" if a.encrypted else "no",
            )
        console.print(alerts)
    cert = _facts(
        "Server certificate",
        [
            ("subject", r.cert_subject),
            ("issuer", r.cert_issuer),
            ("SANs", ", ".join(r.cert_sans)),
            ("valid from", _when(r.cert_not_before, ms=False)),
            ("valid until", _when(r.cert_not_after, ms=False)),
            ("status", r.cert_status),
            ("covers the SNI", {None: None, True: "yes", False: "no"}[r.sni_matches_cert]),
            ("key", r.cert_key),
            ("signature hash", r.cert_signature_hash),
            ("problem", r.cert_error),
            ("chain SHA-256", Text("\n".join(text(h).plain for h in r.cert_chain_sha256))),
        ],
    )
    if cert is not None:
        console.print(cert)
    elif r.stage not in ("tcp_syn", "tcp_open", "client_hello"):
        console.print(Text("Server certificate: not visible (encrypted in TLS 1.3)", style="dim"))
    facts = _facts(
        "Handshake",
        [
            ("history", r.history),
            ("stage", r.stage),
            ("SNI", r.sni),
            ("offered versions", ", ".join(r.offered_versions)),
            ("version", r.version),
            ("offered ciphers", ", ".join(r.offered_ciphers)),
            ("cipher", r.cipher),
            ("group", r.group),
            ("ALPN offered", ", ".join(r.alpn_offered)),
            ("ALPN", r.alpn),
            ("resumed", "yes" if r.resumed else None),
            ("HelloRetryRequest", "yes" if r.hrr else None),
            ("proxy", f"CONNECT {r.proxy_target} → {r.proxy_status}" if r.proxy_target else None),
            ("proxy answer", r.proxy_status_line),
            ("STARTTLS", r.starttls),
            ("server sent", r.server_first_bytes),
            ("client sent", r.client_first_bytes),
            ("JA3", r.ja3),
            ("JA3S", r.ja3s),
            ("JA4", r.ja4),
            ("close", r.close + (f" by {r.close_by}" if r.close_by else "")),
            ("ICMP error", f"{r.icmp_error} from {r.icmp_from}" if r.icmp_error else None),
            ("bytes", f"client {r.client_bytes}, server {r.server_bytes}; {r.packets} packets"),
            ("TCP RTT", f"{r.tcp_rtt * 1000:.2f} ms" if r.tcp_rtt is not None else None),
            (
                "handshake time",
                f"{r.handshake_time * 1000:.2f} ms" if r.handshake_time is not None else None,
            ),
            ("retransmits", r.retransmits or None),
            ("missing bytes", r.gap_bytes or None),
        ],
    )
    if facts is not None:
        console.print(facts)


def certificates_table(rows: Sequence[Certificate]) -> Table:
    """``tlsa certs``: one line per server certificate, what breaks next first."""
    t = _table(
        "Server certificates (rejected by some clients first, then by days left)",
        [("subject", "left"), ("issuer", "left"), ("names", "left"), ("servers", "left"),
         ("expires", "left"), ("days left", "right"), ("key", "left"),
         ("completed", "right"), ("rejected", "right"), ("status", "left"), ("trust", "left")],
    )
    for c in rows:
        alerts = ", ".join(f"{k} {n}" for k, n in c.rejected_alerts.items())
        soon = c.days_left is not None and c.days_left < EXPIRY_WARNING_DAYS
        t.add_row(
            text(c.subject),
            text(c.issuer),
            text(", ".join(c.names or c.sans)),
            text(", ".join(c.servers)),
            text(_when(c.not_after, ms=False)),
            text(c.days_left, "bold red" if soon else ""),
            text(c.key),
            text(c.completed),
            text(f"{c.rejected} ({alerts})" if alerts else c.rejected,
                 "bold red" if c.rejected else ""),
            text(c.cert_status),
            text(c.cert_trust),
        )
    return t
