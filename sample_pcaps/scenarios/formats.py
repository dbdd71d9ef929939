"""Capture-quality and file-format scenarios: what real captures look like in the field.

A capture that starts mid-handshake and one cut mid-handshake (both ``incomplete``: the
capture, not a party, lost the evidence), pcapng with two interfaces (dumpcap on the
server's uplink and loopback around an haproxy TLS terminator), Linux cooked SLL2
(``tcpdump -i any``), IPv6, 802.1Q tags added to a real Ethernet capture with
``tcprewrite``, and a gzip-compressed pcap.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import dpkt

from tests.harness import servers
from tests.harness.capture import packets
from tests.harness.pki import LeafKind

from .base import (
    Ctx,
    Expect,
    ScenarioError,
    check,
    check_http,
    check_log,
    established,
    failed,
    scenario,
)
from .nginx import NGINX, WWW, one_site


def _first_server_data(path: Path, port: int = 443) -> int:
    """1-based index of the first packet carrying server payload (the ServerHello)."""
    for n, (_ts, ip) in enumerate(packets(path), start=1):
        tcp = ip.data
        if isinstance(tcp, dpkt.tcp.TCP) and tcp.sport == port and tcp.data:
            return n
    raise ScenarioError(f"no server data in {path}")


def _editcap(src: Path, dst: Path, first: int, last: int | None = None) -> None:
    """Keep packets ``first``..``last`` (1-based, inclusive) of ``src`` in ``dst``."""
    if last is None:
        last = sum(1 for _ in packets(src))
    done = subprocess.run(["editcap", "-F", "pcap", "-r", str(src), str(dst), f"{first}-{last}"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ScenarioError(f"editcap: {done.stderr}")


@scenario(stack="nginx + curl, trimmed with editcap",
          shows="capture started mid-handshake: first packet is the server's ServerHello "
                "segment (no SYN, no ClientHello)")
def cap_starts_mid_handshake(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--tls-max", "1.2")
    said = check_http(run, 200)
    first = _first_server_data(ctx.raw)
    _editcap(ctx.raw, ctx.out, first)
    return [Expect(outcome="incomplete", sni=None, version="TLSv1.2",
                   setup=f"{NGINX}; curl --tls-max 1.2 {said}; the capture was trimmed with "
                         f"editcap to start at packet {first}, the segment carrying the "
                         "ServerHello, so the SYN and the ClientHello are not in it")]


@scenario(stack="nginx + curl, cut with editcap",
          shows="capture cut mid-handshake: ends after the first segment of the server's "
                "flight, client still waiting")
def cap_cut_mid_handshake(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        run = ctx.curl(f"https://{WWW}/", "--tls-max", "1.2")
    said = check_http(run, 200)
    last = _first_server_data(ctx.raw)
    _editcap(ctx.raw, ctx.out, 1, last)
    return [Expect(outcome="incomplete", sni=WWW, version="TLSv1.2",
                   setup=f"{NGINX}; curl --tls-max 1.2 {said}, but the capture was cut with "
                         f"editcap after packet {last}, the first segment of the server's "
                         "flight (ServerHello and part of the Certificate): the client is "
                         "still waiting when the capture ends")]


@scenario(tools=("haproxy", "dumpcap"),
          stack="haproxy + nginx + curl, dumpcap", ext="pcapng", server_ports=(443, 8443),
          tls_ports=(8443,),
          shows="pcapng with two interfaces: client to haproxy on eth0, haproxy re-encrypting "
                "to an nginx backend on lo")
def cap_pcapng_two_interfaces(ctx: Ctx) -> list[Expect]:
    backend = "backend.example.com"
    ctx.nginx(ctx.site(backend, ctx.pki.server(backend), port=8443, default=True)
              .replace("listen [::]:8443 ssl default_server;", ""), ports=(8443,))
    front = ctx.pki.server(WWW)
    pem = ctx.work / "haproxy.pem"
    pem.write_bytes(front.chain.read_bytes() + front.key.read_bytes())
    srv = ctx.server(servers.haproxy(ctx.lab.server, ctx.work / "haproxy", f"""
frontend https
    mode http
    option httplog
    bind :443 ssl crt {pem}
    default_backend app
backend app
    mode http
    server app1 127.0.0.1:8443 ssl verify required ca-file {ctx.pki.root} sni str({backend})
""", ports=[443]))
    with ctx.capture([443, 8443], ns=ctx.lab.server, interfaces=("eth0", "lo"), path=ctx.out):
        run = ctx.curl(f"https://{WWW}/")
    said = check_http(run, 200)
    logged = check_log(srv, r"https~ app/app1 .* 200 ")
    base = "haproxy 2.6 terminating TLS on :443 and re-encrypting to nginx on 127.0.0.1:8443"
    return [
        established(f"{base}; dumpcap on eth0 and lo of the server host; curl {said}; "
                    f"{logged}", sni=WWW, version="TLSv1.3"),
        established(f"{base}; the backend connection from haproxy (sni {backend}, verify "
                    "required against the test root), on lo", sni=backend, version="TLSv1.3"),
    ]


@scenario(stack="nginx + curl, tcpdump -i any",
          shows="Linux cooked capture v2 (SLL2): a success and an expired certificate")
def cap_linux_sll2(ctx: Ctx) -> list[Expect]:
    host = "expired.example.com"
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), default=True)
              + ctx.site(host, ctx.pki.server(host, kind=LeafKind.EXPIRED)))
    with ctx.capture([443], interfaces=("any",)):
        ok = ctx.curl(f"https://{WWW}/")
        bad = ctx.curl(f"https://{host}/", "--tls-max", "1.2")
    said = check_http(ok, 200)
    said2 = check(bad, exit=60, says="certificate has expired")
    if subprocess.run(["tcpdump", "-r", str(ctx.raw), "-c", "1"], capture_output=True,
                      text=True, check=False).stderr.find("LINUX_SLL2") < 0:
        raise ScenarioError("expected a LINUX_SLL2 capture from tcpdump -i any")
    return [
        established(f"{NGINX}; tcpdump -i any (link type LINUX_SLL2); curl {said}", sni=WWW,
                    version="TLSv1.3"),
        failed("certificate_expired", "client",
               f"{NGINX} serving an expired certificate for {host}; tcpdump -i any; curl "
               f"--tls-max 1.2 {said2}", sni=host, version="TLSv1.2"),
    ]


@scenario(stack="nginx + curl over IPv6",
          shows="IPv6 (fd00:99::/64): a success and a self-signed certificate")
def cap_ipv6(ctx: Ctx) -> list[Expect]:
    host = "selfsigned.example.com"
    ctx.nginx(ctx.site(WWW, ctx.pki.server(WWW), default=True)
              + ctx.site(host, ctx.pki.server(host, kind=LeafKind.SELF_SIGNED)))
    ip6 = ctx.lab.addr.server_ip6
    with ctx.capture([443]):
        ok = ctx.curl(f"https://{WWW}/", ip=ip6)
        bad = ctx.curl(f"https://{host}/", "--tls-max", "1.2", ip=ip6)
    said = check_http(ok, 200)
    said2 = check(bad, exit=60, says="self-signed certificate")
    return [
        established(f"{NGINX} on [{ip6}]:443; curl {said}", sni=WWW, version="TLSv1.3"),
        failed("certificate_untrusted", "client",
               f"{NGINX} on [{ip6}]:443 serving a self-signed certificate for {host}; curl "
               f"--tls-max 1.2 {said2}", sni=host, version="TLSv1.2"),
    ]


@scenario(tools=("tcprewrite",), stack="nginx + curl, tcprewrite",
          shows="802.1Q VLAN 100 tags added to a real Ethernet capture: a success and a "
                "cipher mismatch")
def cap_vlan_8021q(ctx: Ctx) -> list[Expect]:
    srv = one_site(ctx, WWW)
    with ctx.capture([443]):
        ok = ctx.curl(f"https://{WWW}/")
        bad = ctx.s_client(WWW, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256",
                           sni=WWW)
    said = check_http(ok, 200)
    said2 = check(bad, exit=1, says="alert handshake failure")
    logged = check_log(srv, "no shared cipher")
    done = subprocess.run(["tcprewrite", "--enet-vlan=add", "--enet-vlan-tag=100",
                           "--enet-vlan-cfi=0", "--enet-vlan-pri=0", f"--infile={ctx.raw}",
                           f"--outfile={ctx.out}"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ScenarioError(f"tcprewrite: {done.stderr}")
    tagged = subprocess.run(["tshark", "-r", str(ctx.out), "-Y", "vlan.id == 100"],
                            capture_output=True, text=True, check=False).stdout
    if not tagged:
        raise ScenarioError("tcprewrite output has no VLAN 100 frames")
    return [
        established(f"{NGINX}; curl {said}; then every frame tagged VLAN 100 with "
                    "tcprewrite --enet-vlan=add", sni=WWW, version="TLSv1.3"),
        failed("cipher_mismatch", "server",
               f"{NGINX}; openssl s_client -tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256 "
               f"{said2}; {logged}; frames tagged VLAN 100 with tcprewrite", sni=WWW),
    ]


@scenario(stack="nginx + curl, gzip", ext="pcap.gz",
          shows="gzip-compressed pcap: a TLS 1.2 success and a certificate for another host")
def cap_gzip(ctx: Ctx) -> list[Expect]:
    one_site(ctx, WWW)
    with ctx.capture([443]):
        ok = ctx.curl(f"https://{WWW}/", "--tls-max", "1.2")
        bad = ctx.curl("https://api.example.net/", "--tls-max", "1.2")
    said = check_http(ok, 200)
    said2 = check(bad, exit=60, says="no alternative certificate subject name matches")
    with ctx.raw.open("rb") as src, gzip.open(ctx.out, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return [
        established(f"{NGINX}; curl --tls-max 1.2 {said}; file gzip-compressed", sni=WWW,
                    version="TLSv1.2"),
        failed("sni_mismatch", "client",
               f"{NGINX} with a certificate for {WWW} only; curl --tls-max 1.2 "
               f"https://api.example.net/ completed the handshake, checked the name and closed "
               f"({said2}); file gzip-compressed", sni="api.example.net", version="TLSv1.2"),
    ]
