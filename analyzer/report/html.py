"""The self-contained HTML report: summary, figures, failed handshakes, their details.

One ``index.html`` that needs nothing else: figures are inlined as SVG data URIs, the style
sheet and the one script are inline, and a Content-Security-Policy forbids any network
access. Every string that comes from a capture (SNI, certificate names, ALPN, HTTP lines,
reasons quoting them) goes through :func:`esc` (``html.escape``); only :class:`Html`
values, built here from escaped parts, are inserted as markup. The page depends on packet
times only, never on the clock, so the same input gives the same file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.limits import REPORT_MAX_FAILED
from analyzer.record import FAILURE_SIDES, FAILURES, HandshakeRecord
from analyzer.report.assets import CSS, JS, content_security_policy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from analyzer.api import Run
    from analyzer.report.figures import Image

REPORT_FILE = "index.html"
FIGURE_CAPTIONS = {
    "failures_over_time": "Connections per time bin by outcome (top) and failed handshakes "
    "by category (bottom): a new category or a jump in one shows when a problem started.",
    "failure_categories": "How many failed handshakes each category explains, with the side "
    "that most often ended them.",
    "top_failing_servers": "Servers (IP:port and SNI) with the most failures; the label gives "
    "failed of all connections to that server.",
    "handshake_funnel": "How far handshakes got: each bar is the number of connections that "
    "reached a stage; coloured parts stopped there.",
    "version_outcome_heatmap": "Negotiated version against outcome (failures before the "
    "ServerHello have no negotiated version).",
    "handshake_time_distribution": "Time from ClientHello to established or to the failure.",
}


class Html(str):
    """Markup that is safe to insert as it is (built from escaped parts)."""

    __slots__ = ()

    def __add__(self, other: str) -> Html:
        return Html(str.__add__(self, esc(other)))

    def __radd__(self, other: str) -> Html:
        return Html(str.__add__(esc(other), self))


def esc(value: object) -> Html:
    """Text for HTML: escaped (``<``, ``>``, ``&``, quotes); None as a dash."""
    if isinstance(value, Html):
        return value
    if value is None:
        return Html("–")
    return Html(html.escape(str(value), quote=True))


def tag(name: str, /, *children: object, **attrs: object) -> Html:
    """``<name attrs>children</name>``: attribute values and text children escaped.
    ``class_`` stands for ``class``; ``data_x`` for ``data-x``; None drops an attribute."""
    parts = [name]
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        attr = key.rstrip("_").replace("_", "-")
        parts.append(attr if value is True else f'{attr}="{esc(value)}"')
    inner = "".join(esc(c) for c in children)
    return Html(f"<{' '.join(parts)}>{inner}</{name}>")


def join(items: Iterable[object], sep: str = "") -> Html:
    return Html(esc(sep).join(esc(i) for i in items))


def when(ts: float | None, *, ms: bool = True) -> str | None:
    """Packet time as UTC text."""
    if ts is None:
        return None
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S") + (f".{dt.microsecond // 1000:03d}" if ms else "")


def _server(r: HandshakeRecord) -> str:
    ip = f"[{r.server_ip}]" if ":" in r.server_ip else r.server_ip
    return f"{ip}:{r.server_port}"


def _client(r: HandshakeRecord) -> str:
    ip = f"[{r.client_ip}]" if ":" in r.client_ip else r.client_ip
    return f"{ip}:{r.client_port}"


def _anchor(uid: str) -> str:
    return f"c-{uid}"


def swatch(category: str | None) -> Html:
    from analyzer.plots import color

    if not category:
        return Html("")
    return tag("span", "", class_="swatch", style=f"background:{color(category)}")


def _dl(facts: Sequence[tuple[str, object]]) -> Html:
    items = []
    for name, value in facts:
        if value is None or value == "" or value == []:
            continue
        items.append(tag("dt", name) + tag("dd", value))
    return tag("dl", join(items), class_="facts") if items else Html("")


def _table(
    headers: Sequence[str | tuple[str, str]], rows: Iterable[Sequence[object]], **attrs: object
) -> Html:
    """A table; a header given as ``(text, "num")`` right-aligns its column."""
    head = []
    kinds = []
    for h in headers:
        text, kind = h if isinstance(h, tuple) else (h, "")
        kinds.append(kind)
        head.append(tag("th", text, class_=kind or None))
    body = []
    for row in rows:
        cells = [
            tag("td", value, class_=kind or None) for value, kind in zip(row, kinds, strict=True)
        ]
        body.append(tag("tr", join(cells)))
    if not body:
        return tag("p", "none", class_="muted")
    return tag(
        "div",
        tag("table", tag("thead", tag("tr", join(head))), tag("tbody", join(body)), **attrs),
        class_="scroll",
    )


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def _figure_html(name: str, image: Image) -> Html:
    title, svg = image
    data = base64.b64encode(svg).decode("ascii")
    return tag(
        "figure",
        tag_void("img", src=f"data:image/svg+xml;base64,{data}", alt=title or name),
        tag("figcaption", FIGURE_CAPTIONS.get(name, "")),
        id=f"fig-{name}",
    )


def _cards(data: Mapping[str, Any]) -> Html:
    outcomes = data["outcomes"]
    n = data["connections"]
    cards = [
        ("connections", n, ""),
        ("established", outcomes.get("established", 0), "good"),
        (f"failed ({_pct(data['failure_rate'])})", data["failed"], "bad"),
        ("incomplete (not blamed)", outcomes.get("incomplete", 0), ""),
        ("not TLS", outcomes.get("not_tls", 0), ""),
    ]
    return tag(
        "div",
        join(
            tag(
                "div",
                tag("div", value, class_="n"),
                tag("div", label, class_="muted"),
                class_=f"card {kind}".strip(),
            )
            for label, value, kind in cards
        ),
        class_="cards",
    )


def _iso(value: str | None) -> str:
    """``2026-11-25T09:25:18.749+00:00`` as ``2026-11-25 09:25:18.749``."""
    return value.replace("T", " ").removesuffix("+00:00") if value else "–"


def _overview(data: Mapping[str, Any], run: Run | None) -> Html:
    parts = [_cards(data)]
    captures = data["captures"]
    span = f"from {_iso(data['start'])} to {_iso(data['end'])} UTC (packet time)"
    parts.append(tag("p", f"{len(captures)} capture(s), {span}. ", class_="muted"))
    if captures:
        parts.append(
            tag(
                "details",
                tag("summary", "Captures"),
                tag("ul", join(tag("li", tag("code", c)) for c in captures)),
            )
        )
    transports = data.get("transport_mix", [])
    if any(row["transport"] != "tcp" for row in transports):
        versions = ", ".join(f"{v}: {n}" for v, n in data.get("quic_versions", {}).items())
        counts = "; ".join(
            f"{row['transport'].upper()} {row['connections']} ({row['established']} "
            f"established, {row['failed']} failed)"
            for row in transports
        )
        parts.append(
            tag("p", f"Transports: {counts}."
                + (f" QUIC versions: {versions}." if versions else ""), class_="muted")
        )
    quic = data["udp_quic_datagrams"]
    if quic:
        parts.append(
            tag(
                "p",
                f"{quic} UDP datagrams on port 443 belonged to no connection analyzed (their "
                "connection started before the capture, or they are not QUIC).",
                class_="warn",
            )
        )
    if run is not None and (run.errors or run.warnings):
        items = [tag("li", f"error: {e}") for e in run.errors]
        items += [tag("li", f"warning: {w}") for w in run.warnings]
        parts.append(tag("h3", "Input problems") + tag("ul", join(items), class_="warn"))
    return join(parts)


def _causes(data: Mapping[str, Any]) -> Html:
    rows = []
    for f in data["failures"]:
        rows.append(
            [
                tag("span", swatch(f["failure"]), f["failure"], class_="nowrap"),
                f["count"],
                _pct(f["share"]),
                f["failure_side"],
                f["servers"],
                f["inferred"] or "",
                esc(f["example"])
                + " "
                + tag("a", "details", href="#" + _anchor(f["example_uid"]), class_="nowrap"),
            ]
        )
    headers: list[str | tuple[str, str]] = [
        "category", ("count", "num"), ("share", "num"), "usual side", ("servers", "num"),
        ("inferred", "num"), "example",
    ]  # fmt: skip
    return _table(headers, rows, id="causes-table")


def _servers(data: Mapping[str, Any]) -> Html:
    rows = [
        [
            tag("span", s["server"], class_="mono"),
            s["sni"],
            s["connections"],
            s["failed"],
            _pct(s["failure_rate"]),
            swatch(s["top_failure"]) + esc(s["top_failure"]),
        ]
        for s in data["worst_servers"]
    ]
    headers: list[str | tuple[str, str]] = [
        "server", "SNI", ("connections", "num"), ("failed", "num"), ("failure rate", "num"),
        "most frequent failure",
    ]  # fmt: skip
    return _table(headers, rows, id="servers-table")


def _certificates(records: Sequence[HandshakeRecord]) -> Html:
    """The certificate inventory (:mod:`analyzer.inventory`): what breaks next first."""
    from analyzer.inventory import inventory

    rows = [
        [
            esc(c.subject),
            esc(c.issuer),
            esc(", ".join(c.names or c.sans)),
            tag("span", ", ".join(c.servers), class_="mono"),
            when(c.not_after, ms=False),
            "–" if c.days_left is None else f"{c.days_left:.0f}",
            esc(c.key),
            c.completed,
            esc(f"{c.rejected} " + ", ".join(f"{k} {n}" for k, n in c.rejected_alerts.items())),
            esc(c.cert_status),
            esc(c.cert_trust),
        ]
        for c in inventory(records)
    ]
    headers: list[str | tuple[str, str]] = [
        "subject", "issuer", "names", "servers", "expires", ("days left", "num"), "key",
        ("completed", "num"), ("rejected", "num"), "status", "trust",
    ]  # fmt: skip
    return _table(headers, rows, id="certificates-table")


def _mix(rows: Sequence[Mapping[str, Any]], key: str) -> Html:
    body = [
        [
            tag("span", r[key], class_="mono"),
            r["connections"],
            r["established"],
            r["failed"],
        ]
        for r in rows
    ]
    headers: list[str | tuple[str, str]] = [
        key, ("connections", "num"), ("established", "num"), ("failed", "num"),
    ]  # fmt: skip
    return _table(headers, body)


_FAILED_HEADERS = (
    ("time (UTC)", "number"), ("server ← client", "text"), ("SNI", "text"),
    ("version", "text"), ("stage", "text"), ("category", "text"), ("side", "text"),
    ("alert", "text"), ("reason, and what to do", "text"),
)  # fmt: skip


def _alert_text(r: HandshakeRecord) -> str | None:
    if r.last_alert:
        return r.last_alert
    if any(a.encrypted for a in r.alerts):
        return "(encrypted)"
    return None


def _failed_table(failed: Sequence[HandshakeRecord], total: int) -> Html:
    heads = join(
        tag("th", tag("button", text, type="button"), data_type=kind, scope="col")
        for text, kind in _FAILED_HEADERS
    )
    rows = []
    for r in failed:
        cells = [
            tag(
                "td",
                tag("a", (when(r.ts) or "")[11:], href="#" + _anchor(r.uid)),
                tag("div", (when(r.ts) or "")[:10], class_="muted"),
                data_sort=f"{r.ts:.6f}",
                title=f"capture {r.capture}, uid {r.uid}",
                class_="nowrap",
            ),
            tag(
                "td",
                tag("span", _server(r), class_="mono"),
                tag("div", "← " + _client(r), class_="mono muted"),
                data_sort=_server(r),
            ),
            tag("td", r.sni, class_="name"),
            tag("td", r.version),
            tag("td", r.stage),
            tag("td", swatch(r.failure) + esc(r.failure), data_sort=r.failure, class_="nowrap"),
            tag("td", r.failure_side),
            tag("td", _alert_text(r)),
            tag(
                "td",
                tag("div", r.reason),
                tag("div", tag("b", "fix: "), r.remedy, class_="fix") if r.remedy else "",
                class_="wrap",
            ),
        ]
        rows.append(
            tag(
                "tr",
                join(cells),
                class_="fail",
                data_failure=r.failure,
                data_side=r.failure_side,
                data_uid=r.uid,
            )
        )
    seen = {r.failure for r in failed}
    cats = [tag("option", "all categories", value="")] + [
        tag("option", f, value=f) for f in FAILURES if f in seen
    ]
    sides = [tag("option", "all sides", value="")] + [
        tag("option", s, value=s) for s in FAILURE_SIDES if any(r.failure_side == s for r in failed)
    ]
    filters = tag(
        "div",
        tag_void(
            "input",
            type="search",
            id="filter-text",
            placeholder="filter: any text (server, SNI, reason…)",
            aria_label="filter the failed handshakes",
        ),
        tag("select", join(cats), id="filter-category", aria_label="failure category"),
        tag("select", join(sides), id="filter-side", aria_label="failure side"),
        tag(
            "span",
            tag("span", len(failed), id="shown-count"),
            f" of {len(failed)} failed handshakes shown",
            class_="muted",
        ),
        class_="filters",
    )
    note = Html("")
    if total > len(failed):
        note = tag(
            "p",
            f"Only the first {len(failed)} of {total} failed handshakes (by time) are listed; "
            "use `tlsa analyze --only-failed` for all of them.",
            class_="warn",
        )
    table = tag(
        "table",
        tag("thead", tag("tr", heads)),
        tag("tbody", join(rows)),
        id="failed-table",
    )
    hint = tag(
        "p",
        "Click a column title to sort, a time to open the connection's details.",
        class_="muted small",
    )
    return join([note, filters, hint, tag("div", table, class_="scroll")])


def _details(r: HandshakeRecord) -> Html:
    summary = tag(
        "summary",
        swatch(r.failure),
        tag("strong", r.failure),
        f" · {_server(r)} · SNI {r.sni or '–'} · {when(r.ts)} UTC · ",
        tag("code", r.uid),
    )
    diagnosis = _dl(
        [
            ("outcome", r.outcome),
            ("failure", r.failure),
            ("ended by", r.failure_side),
            ("inferred", "yes: rests on a heuristic, not a visible alert" if r.inferred else None),
            ("reason", r.reason),
            ("remedy", tag("pre", r.remedy) if r.remedy else None),
            ("warnings", ", ".join(r.warnings) or None),
            ("anomalies", ", ".join(r.anomalies) or None),
        ]
    )
    handshake = _dl(
        [
            ("client → server", f"{_client(r)} → {_server(r)}"),
            ("capture", r.capture),
            (
                "Wireshark filter",
                tag("code", r.wireshark_filter, class_="wsf")
                + tag("button", "copy", type="button", class_="copy",
                      title="Copy the display filter")
                if r.wireshark_filter
                else None,
            ),
            ("history", tag("code", r.history) if r.history else None),
            ("stage", r.stage),
            ("SNI", r.sni),
            ("offered versions", ", ".join(r.offered_versions) or None),
            ("version", r.version),
            ("offered ciphers", f"{len(r.offered_ciphers)} suites" if r.offered_ciphers else None),
            ("cipher", r.cipher),
            ("group", r.group),
            ("ALPN offered", ", ".join(r.alpn_offered) or None),
            ("ALPN", r.alpn),
            ("resumed / HRR", f"{'yes' if r.resumed else 'no'} / {'yes' if r.hrr else 'no'}"),
            ("proxy", f"CONNECT {r.proxy_target} → {r.proxy_status}" if r.proxy_target else None),
            ("proxy answer", r.proxy_status_line),
            ("STARTTLS", r.starttls),
            ("server sent", r.server_first_bytes),
            ("client sent", r.client_first_bytes),
            ("JA3 / JA4", f"{r.ja3 or '–'} / {r.ja4 or '–'}" if r.ja3 or r.ja4 else None),
            ("JA3S", r.ja3s),
            ("close", f"{r.close}" + (f" by {r.close_by}" if r.close_by else "")),
            (
                "bytes / packets",
                f"client {r.client_bytes} B, server {r.server_bytes} B, {r.packets} packets",
            ),
            ("TCP RTT", f"{r.tcp_rtt * 1000:.2f} ms" if r.tcp_rtt is not None else None),
            (
                "handshake time",
                f"{r.handshake_time * 1000:.2f} ms" if r.handshake_time is not None else None,
            ),
            (
                "retransmits / gaps",
                f"{r.retransmits} / {r.gap_bytes} B" if r.retransmits or r.gap_bytes else None,
            ),
        ]
    )
    offered = Html("")
    if r.offered_ciphers:
        offered = tag(
            "details",
            tag("summary", f"Offered cipher suites ({len(r.offered_ciphers)})"),
            tag("ul", join(tag("li", tag("code", c)) for c in r.offered_ciphers), class_="small"),
        )
    alerts = _table(
        ["+ms", "from", "level", "description", ("code", "num"), "encrypted"],
        [
            [
                f"{(a.ts - r.ts) * 1000:.1f}",
                a.sender,
                a.level,
                a.description,
                a.code,
                "yes" if a.encrypted else "no",
            ]
            for a in r.alerts
        ],
    )
    timeline = _table(
        [("+ms", "num"), "from", "what"],
        [[f"{e.t * 1000:.1f}", e.sender, e.what] for e in r.timeline],
    )
    if r.cert_subject or r.cert_chain_sha256:
        cert = _dl(
            [
                ("subject", r.cert_subject),
                ("issuer", r.cert_issuer),
                ("SANs", ", ".join(r.cert_sans) or None),
                ("valid from", when(r.cert_not_before, ms=False)),
                ("valid until", when(r.cert_not_after, ms=False)),
                ("status", r.cert_status),
                (
                    "covers the SNI",
                    None if r.sni_matches_cert is None else ("yes" if r.sni_matches_cert else "no"),
                ),
                ("key", r.cert_key),
                ("signature hash", r.cert_signature_hash),
                ("problem", r.cert_error),
                (
                    "chain SHA-256",
                    tag("ol", join(tag("li", tag("code", h)) for h in r.cert_chain_sha256))
                    if r.cert_chain_sha256
                    else None,
                ),
            ]
        )
    else:
        cert = tag(
            "p",
            "Not visible in the capture (encrypted in TLS 1.3, or never sent).",
            class_="muted",
        )
    body = join(
        [
            tag(
                "div",
                tag("div", tag("h3", "Diagnosis"), diagnosis),
                tag("div", tag("h3", "Handshake"), handshake, offered),
                class_="cols",
            ),
            tag("h3", "Alerts"),
            alerts,
            tag("h3", "Timeline"),
            timeline,
            tag("h3", "Server certificate"),
            cert,
        ]
    )
    return tag("details", summary, body, class_="conn", id=_anchor(r.uid))


def render(
    records: Sequence[HandshakeRecord],
    *,
    run: Run | None = None,
    title: str = "TLS handshake report",
    figures: Mapping[str, Figure] | None = None,
) -> str:
    """The report page for these records (sorted by ``(ts, uid)`` as collected).

    ``figures`` defaults to every figure of :mod:`analyzer.plots`."""
    from analyzer import aggregate
    from analyzer.frame import to_dataframe
    from analyzer.report import figures as images

    records = list(records)
    df = to_dataframe(records)
    quic = sum(s.udp_quic for s in run.stats.values()) if run is not None else 0
    captures = sorted(run.stats) if run is not None and run.stats else ()
    data = aggregate.summary(df, quic=quic, captures=captures)
    drawn = (
        images.draw(df)
        if figures is None
        else {name: images.image(fig) for name, fig in figures.items()}
    )
    figure_html = join(_figure_html(name, im) for name, im in drawn.items())
    failed_all = [r for r in records if r.failure]
    failed = failed_all[:REPORT_MAX_FAILED]
    nav = tag(
        "nav",
        join(
            tag("a", text, href=f"#{anchor}")
            for text, anchor in (
                ("Causes", "causes"),
                ("Servers", "servers"),
                ("Figures", "figures"),
                ("Versions and ciphers", "mix"),
                ("Certificates", "certificates"),
                ("Failed handshakes", "failed"),
                ("Details", "details"),
            )
        ),
    )
    sections = [
        tag("h1", title),
        nav,
        _overview(data, run),
        tag("h2", "Failure causes", id="causes"),
        _causes(data),
        tag("h2", "Servers with failures", id="servers"),
        _servers(data),
        tag("h2", "Figures", id="figures"),
        figure_html,
        tag("h2", "Versions and ciphers", id="mix"),
        tag(
            "div",
            tag("div", tag("h3", "Negotiated version"), _mix(data["version_mix"], "version")),
            tag("div", tag("h3", "Negotiated cipher suite"), _mix(data["cipher_mix"], "cipher")),
            class_="cols",
        ),
        tag("h2", "Server certificates", id="certificates"),
        tag("p", "Each certificate the servers presented where it was visible (TLS 1.3 hides "
            "it without a key log); rejected by some clients first, then by days left.",
            class_="muted"),
        _certificates(records),
        tag("h2", "Failed handshakes", id="failed"),
        _failed_table(failed, len(failed_all))
        if failed
        else tag("p", "No failed handshakes.", class_="muted"),
        tag("h2", "Connection details", id="details"),
        join(_details(r) for r in failed) if failed else tag("p", "–", class_="muted"),
    ]
    head = join(
        [
            Html('<meta charset="utf-8">'),
            tag_void("meta", http_equiv="Content-Security-Policy",
                     content=content_security_policy()),
            tag_void("meta", name="viewport", content="width=device-width, initial-scale=1"),
            tag("title", title),
            Html(f"<style>{CSS}</style>"),
        ]
    )  # fmt: skip
    page = (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head>{head}</head>'
        f"<body>{join(sections)}<script>{JS}</script></body></html>\n"
    )
    return page


def tag_void(name: str, /, **attrs: object) -> Html:
    """A void element (``<meta ...>``, no closing tag)."""
    full = tag(name, **attrs)
    return Html(full[: -len(f"</{name}>")])


def write(
    records: Sequence[HandshakeRecord],
    out_dir: str | Path,
    *,
    run: Run | None = None,
    title: str = "TLS handshake report",
) -> Path:
    """Write ``out_dir/index.html`` (creating the directory) and return its path."""
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / REPORT_FILE
    path.write_text(render(records, run=run, title=title), encoding="utf-8")
    return path
