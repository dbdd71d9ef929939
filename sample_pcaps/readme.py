"""Writes ``sample_pcaps/README.md`` from the scenario registry and the manifest."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from scenarios import Scenario

INTRO = """\
# Sample captures

Small, real packet captures of TLS handshakes that succeed and fail, one or more per
cause of SPEC §1, made by the software people run (nginx, squid, haproxy, stunnel,
Postfix, OpenSSL `s_server`/`s_client`, curl, Python `ssl`, gnutls-cli, chromium) inside
private network namespaces. This file is written by `generate.py`; edit the scenarios,
not this file.

- **Regenerate**: `make samples` (as root; `python sample_pcaps/generate.py --all`), or
  `--only NAME...` for some, `--out DIR` elsewhere, `--list` to list them.
- **Mixed incident** (`incident_deploy.pcap.gz`): connections ran a few at a time in real
  time; afterwards each connection's packets were shifted as a block so that connection *n*
  starts at its slot in a four-minute window (its own packet timing untouched). That keeps
  generation fast and the file under 1 MB while it reads like minutes of traffic.
- **Ground truth**: `MANIFEST.jsonl`, one JSON object per TCP connection:
  `file, scenario, client_ip, client_port, server_ip, server_port, outcome, failure,
  failure_side, sni, version, setup`, with SPEC §3/§4 values. The truth comes from the
  set-up and from what the client and server themselves reported (exit status, error
  text, server log lines), never from this project's analyzer; `setup` says which. The
  generator also checks each line's `sni` and `version` against tshark's reading of the
  capture and refuses to write a line that disagrees with any of these.
- **Key logs** (`keys/NAME.keys`): the `keyed_*` scenarios' clients write their own key
  log (gnutls-cli and curl with `SSLKEYLOGFILE`, Chromium with `--ssl-key-log-file`,
  Python with `keylog_filename`, `openssl s_client -keylogfile`); the generator stores it
  beside the capture. They hold secrets of these test connections only (a throw-away PKI,
  keys that exist nowhere else). Analyse with `tlsa analyze sample_pcaps/NAME.pcap
  --keylog sample_pcaps/keys/NAME.keys`; the golden test gives every key log to the whole
  folder (a key log only opens the connections whose client random it names).
- **How**: two network namespaces (client 10.99.0.2 / fd00:99::2, server 10.99.0.1 /
  fd00:99::1) joined by a veth link at MTU 1500 with offloads off, so segments and
  checksums are what a real NIC sends. tcpdump runs on the client's interface (unless a
  scenario says otherwise) with full snaplen, filtered to the scenario's ports, and must
  report 0 packets dropped. Loss and black holes are drops in the receiving host's INPUT
  chain, which comes after the capture point: the capture shows what a tap on the link
  before the faulty hop would see, retransmissions included.
  Certificates come from a throw-away PKI made at generation time (`tests/harness/pki.py`):
  a root, an intermediate, leaves good / expired / not-yet-valid / self-signed / for
  another host / served without their intermediate, and an untrusted inspection CA.
  Network faults are iptables rules inside the namespaces (this kernel has no `netem`).
  Ports and keys differ on every run; outcomes do not (`tests/test_samples_generate.py`
  reruns a few scenarios and compares).

## Choices where the SPEC leaves room

- **MTU black hole** (`net_mtu_blackhole`): the client's side drops every packet of 1000
  bytes or more (`iptables -m length --length 1000:65535 -j DROP`, what a path with a
  smaller MTU and filtered ICMP "fragmentation needed" does). The capture point is on the
  link before that drop, so it shows the server's full-size flight sent and retransmitted,
  never acknowledged, until curl gives up and closes with a FIN. Truth: `failed`,
  `handshake_aborted`, `network`. Not `no_server_response`: that category (§4) is a
  ClientHello that was *never answered*, and here the server did answer (its ServerHello
  is on the wire); `handshake_aborted` is "one side closed (FIN) mid-handshake with no
  alert", which is exactly what the client did, and the side is `network` because the
  unacknowledged, retransmitted server flight shows the path lost it, not the client.
- **RST right after the ClientHello** (`net_rst_after_client_hello`): an SNI filter
  (`-m string --string blocked.example.com --algo bm -j REJECT --reject-with tcp-reset`)
  forges the reset; nginx never sees the connection (its log is checked). Truth side:
  `network`.
- **SYN answered by RST** (`net_tcp_refused`): a host firewall REJECT on the server and a
  closed port; both are the server host refusing: side `server` (SPEC §4).
- **Plaintext HTTP to the TLS port / TLS to the plain port**: nginx answers HTTP 400 and
  closes in both; `not_tls`, side `server` (the side that ended it). The first has no
  ClientHello at all, so its outcome is `not_tls`; the second has one, answered by HTTP,
  so `failed` (SPEC §3).
- **Capture that starts mid-handshake / is cut mid-handshake**: `incomplete`, nobody
  blamed (SPEC §4). The cut capture ends right after the first segment of the server's
  flight, with the client still waiting.
- **Not-yet-valid certificate under TLS 1.3** (`nginx_not_yet_valid_tls13`): OpenSSL
  answers with `bad_certificate` (not `certificate_expired`) and the certificate itself is
  encrypted, so the wire alone cannot tell this from an otherwise invalid certificate. The
  truth stays `certificate_expired`, what actually happened; the TLS 1.2 twin shows the
  dates.
- **Refused STARTTLS**: the client never sends a ClientHello; outcome `not_tls` with
  failure null, since the server did not expect TLS (SPEC §4).

## Scenarios
"""


def _truths(rows: list[dict[str, Any]]) -> str:
    counts = Counter(
        "/".join(str(r[k]) for k in ("outcome", "failure", "failure_side") if r[k] is not None)
        for r in rows
    )
    return ", ".join(f"{n}× {t}" if n > 1 else t for t, n in counts.items())


def write_readme(dest: Path, scenarios: list[Scenario], manifest: list[dict[str, Any]]) -> None:
    lines = [INTRO, "| file | size | stack | what it shows | truth per connection |",
             "|---|---:|---|---|---|"]
    total = written = 0
    for scn in scenarios:
        path = dest / scn.file
        if not path.exists():
            continue
        size = path.stat().st_size
        total += size
        written += 1
        rows = [r for r in manifest if r["file"] == scn.file]
        lines.append(f"| `{scn.file}` | {size / 1024:.1f} KB | {scn.stack} | {scn.shows} | "
                     f"{_truths(rows)} |")
    lines.append("")
    lines.append(f"{len(manifest)} connections in {written} captures, "
                 f"{total / 1024:.0f} KB in all.")
    (dest / "README.md").write_text("\n".join(lines) + "\n")
