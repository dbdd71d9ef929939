"""Network and firewall scenarios: iptables rules inside the namespaces.

The kernel here has no ``netem``, so faults are iptables rules: ``REJECT --reject-with
tcp-reset`` for refused connections and forged resets, ``DROP`` for silence, ``-m string``
for an SNI filter, ``-m length`` for an MTU black hole, ``-m statistic --mode nth`` for
deterministic loss. Rules in a host's INPUT chain drop packets after the capture point
(tcpdump sees a packet before netfilter does on receive), so the capture shows what a tap
on the link before the faulty hop would see.
"""

from __future__ import annotations

import sys

from tests.harness.capture import retransmissions
from tests.harness.servers import Server

from .base import (
    Ctx,
    Expect,
    ScenarioError,
    check,
    check_http,
    established,
    failed,
    iptables,
    scenario,
)
from .nginx import NGINX, WWW, one_site

SILENT_SERVER = """
import socket, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 443)); s.listen(16)
print("listening", flush=True)
held = []
while True:
    conn, peer = s.accept()
    print("accepted", peer, flush=True)
    held.append(conn)  # never read, never answer, never close
"""


@scenario(stack="iptables + curl", server_ports=(443, 8443),
          shows="SYN answered by RST: a host firewall REJECT on 443, nothing listening on 8443")
def net_tcp_refused(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    rule = ["INPUT", "-p", "tcp", "--dport", "443", "--syn", "-j", "REJECT",
            "--reject-with", "tcp-reset"]
    with iptables(ctx.lab.server, rule), ctx.capture([443, 8443]):
        fw = ctx.curl(f"https://{WWW}/")
        closed = ctx.curl(f"https://{WWW}:8443/")
    said = check(fw, exit=7, says="Couldn't connect to server")
    said2 = check(closed, exit=7, says="Couldn't connect to server")
    return [
        failed("tcp_refused", "server",
               f"{NGINX} on 443 behind the server host's firewall rule 'iptables -A INPUT -p "
               f"tcp --dport 443 --syn -j REJECT --reject-with tcp-reset'; curl {said}",
               sni=None),
        failed("tcp_refused", "server",
               f"nothing listening on port 8443 of the server, its kernel answers the SYN "
               f"with RST; curl {said2}", sni=None),
    ]


@scenario(stack="iptables + curl", in_test=True,
          shows="SYN dropped by a firewall: SYN retransmitted, no SYN-ACK, curl gives up "
                "after 3 s")
def net_syn_dropped(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    rule = ["INPUT", "-p", "tcp", "--dport", "443", "--syn", "-j", "DROP"]
    with iptables(ctx.lab.server, rule), ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--connect-timeout", "3")
    said = check(run, exit=28, says="Timeout was reached")
    return [failed("tcp_no_answer", "network",
                   f"{NGINX} behind a firewall dropping SYNs to 443 ('iptables -A INPUT -p tcp "
                   f"--dport 443 --syn -j DROP'); curl --connect-timeout 3 {said}", sni=None)]


@scenario(stack="iptables SNI filter + curl + nginx",
          shows="middlebox SNI filter forges a RST right after the ClientHello for "
                "blocked.example.com; www.example.com passes")
def net_rst_after_client_hello(ctx: Ctx) -> list[Expect]:
    blocked = "blocked.example.com"
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), default=True)
              + ctx.site(blocked, ctx.pki.server(blocked)))
    rule = ["INPUT", "-p", "tcp", "--dport", "443", "-m", "string", "--string", blocked,
            "--algo", "bm", "-j", "REJECT", "--reject-with", "tcp-reset"]
    with iptables(ctx.lab.server, rule), ctx.capture([443]):
        ok = ctx.curl(f"https://{WWW}/")
        reset = ctx.curl(f"https://{blocked}/")
    said_ok = check_http(ok, 200)
    said = check(reset, exit=35, says="Connection reset by peer")
    access = (ctx.work / "nginx" / "nginx-access.log").read_text()
    if blocked in access or WWW not in access:
        raise ScenarioError(f"nginx should have served only {WWW}, its access log:\n{access}")
    rule_text = (f"'iptables -A INPUT -p tcp --dport 443 -m string --string {blocked} "
                 "--algo bm -j REJECT --reject-with tcp-reset'")
    return [
        established(f"{NGINX} behind an SNI filter {rule_text}; curl to {WWW} {said_ok}",
                    sni=WWW, version="TLSv1.3"),
        failed("reset_during_handshake", "network",
               f"{NGINX} behind an SNI filter {rule_text}; the filter forged a RST in answer to "
               f"the ClientHello, curl to {blocked} {said}; nginx never saw the request "
               "(no access-log line)", sni=blocked),
    ]


@scenario(stack="Python socket server + curl",
          shows="server accepts TCP, ACKs the ClientHello and never answers; curl times out "
                "after 3 s and closes")
def net_server_silent(ctx: Ctx) -> list[Expect]:
    srv = ctx.server(Server(ctx.lab.server, "silent", [sys.executable, "-c", SILENT_SERVER],
                            workdir=ctx.work, ports=[443]))
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--max-time", "3")
    said = check(run, exit=28, says="Connection timed out after")
    if "accepted" not in srv.text():
        raise ScenarioError(f"the silent server did not accept the connection: {srv.text()}")
    return [failed("no_server_response", "server",
                   "a Python server that accepts TCP connections on 443 and never reads or "
                   f"answers (it printed 'accepted'); curl --max-time 3 {said}", sni=WWW)]


@scenario(stack="iptables + curl + nginx",
          shows="MTU black hole: the server's full-size segments are dropped on the path, "
                "retransmitted, never acknowledged; curl gives up after 5 s")
def net_mtu_blackhole(ctx: Ctx) -> list[Expect]:
    srv = one_site(ctx, WWW)
    rule = ["INPUT", "-p", "tcp", "--sport", "443", "-m", "length", "--length", "1000:65535",
            "-j", "DROP"]
    with iptables(ctx.lab.client, rule), ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--max-time", "5")
    said = check(run, exit=28, says="Connection timed out after")
    big = [r for r in retransmissions(ctx.raw, min_payload=1000)
           if r[0].endswith(":443")]
    if len(big) < 2:
        raise ScenarioError(f"expected the server's large segments retransmitted, got {big}")
    if "GET /" in srv.text():
        raise ScenarioError("nginx should never have received a request")
    return [failed("handshake_aborted", "network",
                   f"{NGINX}; the path to the client drops packets of 1000 bytes or more "
                   "('iptables -A INPUT -p tcp --sport 443 -m length --length 1000:65535 -j "
                   "DROP' on the client host, after the capture point), like a smaller MTU with "
                   f"ICMP filtered; the server retransmitted {len(big)} full-size segments of "
                   f"its flight, never acknowledged; curl --max-time 5 {said} and closed",
                   sni=WWW, version="TLSv1.3")]


@scenario(stack="iptables + curl + nginx",
          shows="lossy link (every 3rd/4th data segment dropped): retransmissions, yet the "
                "handshake and a 40 KB download succeed")
def net_lossy_ok(ctx: Ctx) -> list[Expect]:
    root = ctx.work / "www"
    root.mkdir()
    (root / "file.bin").write_bytes(bytes(range(256)) * 160)
    cert = ctx.pki.server(WWW)
    ctx.nginx(ctx.site(WWW, cert, default=True).replace(
        'location / { return 200 "ok\\n"; }', f"location / {{ root {root}; }}"))
    nth = ["-m", "tcp", "--tcp-flags", "SYN", "NONE", "-m", "statistic", "--mode", "nth"]
    to_client = ["INPUT", "-p", "tcp", "--sport", "443", *nth, "--every", "3", "--packet", "1",
                 "-j", "DROP"]
    to_server = ["INPUT", "-p", "tcp", "--dport", "443", *nth, "--every", "4", "--packet", "2",
                 "-j", "DROP"]
    with iptables(ctx.lab.client, to_client), iptables(ctx.lab.server, to_server), \
            ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/file.bin", "--max-time", "20")
    said = check_http(run, 200)
    again = retransmissions(ctx.raw)
    if len(again) < 2:
        raise ScenarioError(f"expected retransmissions in the capture, got {again}")
    return [established(f"{NGINX}; loss emulated with 'iptables -m statistic --mode nth' "
                        "(every 3rd server segment and every 4th client segment dropped after "
                        f"the capture point); {len(again)} retransmitted segments; curl fetched "
                        f"40 KB and {said}", sni=WWW, version="TLSv1.3")]
