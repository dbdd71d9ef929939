"""An organisation's internal CA: whose trust store holds it decides the outcome.

One internal root (``tests/harness/private_pki.py``, not the test PKI's root, in no public
store) issues ECDSA leaves for intranet names. Its certificate is written next to the
captures as ``private-ca.pem``: analysing with ``--ca-bundle sample_pcaps/private-ca.pem``
gives the analyzer the trust the clients that completed had. Truth comes from each
client's exit status and error text, and from what it was told to trust.

- A client that trusts the root completes; an ``s_client`` probe completes a TLS 1.2
  handshake and leaves without sending data (the pattern that stays ``established``).
- A client that trusts only another root rejects the chain (``unknown_ca``).
- A client that trusts the root rejects a leaf that does not name the host it asked for.
- squid ssl-bump signing its forged certificates with the internal root: a client given
  the root completes, one without it rejects the forged chain.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

from tests.harness.private_pki import PrivatePKI

from .base import Ctx, Expect, check, check_http, established, failed, scenario
from .squid import PORT as SQUID_PORT
from .squid import SQUID, start_squid

INTRANET = "intranet.corp.example"
WIKI = "wiki.corp.example"
HERE = Path(__file__).resolve().parents[1]
CA_FILE = "private-ca.pem"
NGINX_INTERNAL = "nginx 1.22 with an ECDSA leaf from the internal root"

_lock = threading.Lock()
_shared: list[PrivatePKI] = []


def private_pki() -> PrivatePKI:
    """The one internal PKI of this generator run, its root saved next to the captures
    (appended when a partial run made a new one, so older captures stay verifiable)."""
    with _lock:
        if not _shared:
            folder = Path(tempfile.mkdtemp(prefix="tlsa-private-pki-"))
            folder.chmod(0o755)
            atexit.register(shutil.rmtree, folder, True)
            _shared.append(PrivatePKI(folder))
            pem = _shared[0].root.read_text()
            path = HERE / CA_FILE
            if not path.exists() or pem not in path.read_text():
                with path.open("a") as f:
                    f.write(pem)
        return _shared[0]


def internal_site(ctx: Ctx, name: str, *, protocols: str = "TLSv1.2 TLSv1.3") -> PrivatePKI:
    pki = private_pki()
    cert, key = pki.leaf(name)
    ctx.nginx(f"""
    server {{
        listen 443 ssl default_server;
        server_name {name};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols {protocols};
        location / {{ return 200 "ok\\n"; }}
    }}""")
    return pki


def probe(ctx: Ctx, ca: Path, name: str, *args: str) -> tuple[list[str], str]:
    argv = ["openssl", "s_client", "-connect", f"{ctx.sip}:443", "-servername", name,
            "-CAfile", str(ca), "-verify_return_error", *args]
    return argv, "openssl s_client " + " ".join(a for a in args)


@scenario(stack="nginx + openssl s_client, curl",
          shows="internal CA trusted by the clients: a TLS 1.2 s_client probe completes and "
                "leaves without data; curl fetches over TLS 1.3")
def private_ca_trusted(ctx: Ctx) -> list[Expect]:
    pki = internal_site(ctx, INTRANET)
    argv, what = probe(ctx, pki.root, INTRANET, "-tls1_2")
    with ctx.capture([443]):
        run = ctx.client(argv, input="")
        fetched = ctx.curl(f"https://{INTRANET}/", "--cacert", str(pki.root))
    said = check(run, exit=0, says="Verify return code: 0 (ok)", what="s_client")
    said2 = check_http(fetched, 200)
    return [
        established(f"{NGINX_INTERNAL}; {what} -CAfile (the internal root) {said}, "
                    "closing at end of input without sending data", sni=INTRANET,
                    version="TLSv1.2"),
        established(f"{NGINX_INTERNAL}; curl --cacert (the internal root) {said2}",
                    sni=INTRANET, version="TLSv1.3"),
    ]


@scenario(stack="nginx + curl",
          shows="internal CA not trusted by the client: unknown_ca (TLS 1.2), and the same "
                "rejection hidden in TLS 1.3")
def private_ca_untrusted(ctx: Ctx) -> list[Expect]:
    internal_site(ctx, INTRANET)
    with ctx.capture([443]):
        tls12 = ctx.curl(f"https://{INTRANET}/", "--tls-max", "1.2")
        tls13 = ctx.curl(f"https://{INTRANET}/")
    said12 = check(tls12, exit=60, says="unable to get local issuer certificate")
    said13 = check(tls13, exit=60, says="unable to get local issuer certificate")
    setup = f"{NGINX_INTERNAL}; curl trusting only the test PKI's root, not the internal one"
    return [
        failed("certificate_untrusted", "client", f"{setup}; --tls-max 1.2 {said12}",
               sni=INTRANET, version="TLSv1.2"),
        failed("certificate_untrusted", "client", f"{setup}; TLS 1.3 {said13}",
               sni=INTRANET, version="TLSv1.3"),
    ]


@scenario(stack="nginx + curl, openssl s_client",
          shows="internal CA trusted, but the leaf names another host: curl and s_client "
                "-verify_hostname reject it (TLS 1.2)")
def private_ca_wrong_host(ctx: Ctx) -> list[Expect]:
    pki = internal_site(ctx, INTRANET, protocols="TLSv1.2")
    argv, what = probe(ctx, pki.root, WIKI, "-verify_hostname", WIKI)
    with ctx.capture([443]):
        fetched = ctx.curl(f"https://{WIKI}/", "--cacert", str(pki.root))
        run = ctx.client(argv, input="")
    said = check(fetched, exit=60, says=f"matches target host name '{WIKI}'")
    said2 = check(run, exit=1, says="hostname mismatch", what="s_client")
    setup = (f"{NGINX_INTERNAL} (TLSv1.2 only) for {INTRANET}, asked for {WIKI}; the client "
             "trusts the internal root")
    return [
        failed("sni_mismatch", "client", f"{setup}; curl --cacert {said}", sni=WIKI,
               version="TLSv1.2"),
        failed("sni_mismatch", "client", f"{setup}; {what} {said2}", sni=WIKI,
               version="TLSv1.2"),
    ]


@scenario(tools=("squid",), stack="squid ssl-bump + curl", server_ports=(SQUID_PORT,),
          shows="squid ssl-bump signing with the internal CA: trusted by one client (TLS "
                "completes), not by another (forged chain rejected)")
def private_ca_sslbump(ctx: Ctx) -> list[Expect]:
    from .nginx import WWW, one_site
    from .squid import bump_config

    one_site(ctx, WWW)
    pki = private_pki()
    port_line, helpers = bump_config(ctx)
    port_line = port_line.rsplit("tls-cert=", 1)[0] + f"tls-cert={pki.bump_ca}"
    start_squid(ctx, f"""{helpers}
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
http_access allow all
""", http_port=port_line)
    proxy = ["-x", f"http://{ctx.sip}:{SQUID_PORT}"]
    with ctx.capture([SQUID_PORT]):
        trusted = ctx.curl(f"https://{WWW}/", *proxy, "--cacert", str(pki.root),
                           resolve=False)
        other = ctx.curl(f"https://{WWW}/", *proxy, resolve=False)
    said = check_http(trusted, 200)
    said2 = check(other, exit=60, says="self-signed certificate in certificate chain")
    setup = (f"{SQUID} with ssl_bump (peek, then bump) signing forged certificates with the "
             "internal root")
    return [
        established(f"{setup}; curl -x --cacert (the internal root) {said}", sni=WWW,
                    version="TLSv1.3"),
        failed("certificate_untrusted", "client",
               f"{setup}; curl -x trusting only the test PKI's root {said2}", sni=WWW,
               version="TLSv1.3"),
    ]
