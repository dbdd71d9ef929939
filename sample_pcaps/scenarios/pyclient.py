"""A tiny HTTPS client built on Python's ``ssl`` module, run inside the client namespace.

Usage: ``pyclient.py HOST_IP PORT SNI CAFILE [--tls12] [--alpn P] [--resume N]
[--bind IP:PORT]``. Makes
``N`` (default 1) connections one after another, offering the previous connection's session
for resumption, sends ``GET /`` and prints one JSON object per connection: ``ok``,
``error`` (the exception text), ``version``, ``reused``, ``alpn``, ``status``.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
from typing import Any


def one(args: argparse.Namespace, ctx: ssl.SSLContext,
        session: ssl.SSLSession | None) -> tuple[dict[str, Any], Any]:
    result: dict[str, Any] = {"ok": False, "error": None, "version": None, "reused": False,
                              "alpn": None, "status": None}
    try:
        source = None
        if args.bind:
            ip, _, port = args.bind.rpartition(":")
            source = (ip, int(port))
        with socket.create_connection((args.ip, args.port), timeout=5,
                                      source_address=source) as raw, \
                ctx.wrap_socket(raw, server_hostname=args.sni, session=session) as tls:
            result.update(version=tls.version(), reused=tls.session_reused,
                          alpn=tls.selected_alpn_protocol())
            tls.sendall(f"GET / HTTP/1.1\r\nHost: {args.sni}\r\nConnection: close\r\n\r\n"
                        .encode())
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
            result["status"] = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else None
            result["ok"] = True
            return result, tls.session
    except (OSError, ssl.SSLError) as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        return result, None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ip")
    ap.add_argument("port", type=int)
    ap.add_argument("sni")
    ap.add_argument("cafile")
    ap.add_argument("--tls12", action="store_true")
    ap.add_argument("--alpn", action="append")
    ap.add_argument("--resume", type=int, default=1)
    ap.add_argument("--bind", help="source IP:PORT")
    args = ap.parse_args()
    ctx = ssl.create_default_context(cafile=args.cafile)
    if args.tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn)
    session = None
    for _ in range(args.resume):
        result, session = one(args, ctx, session)
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
