"""Servers and clients that run inside the benchmark's network namespaces.

What it does: three small programs, standard library only, started by ``bench/corpus.py``
in the namespaces of a ``tests.harness.Lab``:

- ``serve CONFIG.json``: one multi-site HTTPS server on Python ``ssl`` (OpenSSL), a thread
  per connection. The SNI picks the certificate (good, expired, not yet valid, self-signed,
  missing intermediate, interception CA, or a certificate for another host); an unknown name
  gets an ``unrecognized_name`` alert. ``GET /bytes/N`` answers N bytes, ``POST`` reads the
  body and answers a short reply. Responses are paced (``SO_MAX_PACING_RATE``) so the
  capture keeps up with the link.
- ``silent IP PORT``: accepts TCP connections and never reads or answers.
- ``clients JOBS.jsonl RESULTS.jsonl``: runs connection jobs on a thread pool, each from a
  fixed client address and port, with Python ``ssl`` or ``openssl s_client``, and writes
  one JSON line per job with what the client reported (exit, error text, version, bytes).

What it does not do: decide what is true about a connection (``corpus.py`` does, from the
set-up and these reports) or touch anything outside the namespaces it runs in.
RFC 8446 / RFC 5246 only through the stacks it drives.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)  # Linux value
CHUNK = 64 * 1024
BLOB = os.urandom(1024 * 1024)  # response bytes; encrypted on the wire anyway
HANDSHAKE_TIMEOUT = 900.0  # server side: longer than any corpus run, so the server never
# closes a connection that a middlebox reset (the capture would show a stray FIN after it)
IO_TIMEOUT = 30.0
UPLOAD_REPLY = b'{"stored": true}\n'


# -- server ----------------------------------------------------------------------------------


def _context(cfg: dict[str, Any], chain: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion[cfg["min_version"]]
    ctx.set_ciphers(cfg["ciphers"])
    ctx.load_cert_chain(chain, key)
    return ctx


def serve(config_path: str) -> None:
    """Run the multi-site HTTPS server described by ``config_path`` until killed."""
    with open(config_path) as f:
        cfg = json.load(f)
    sites = {name: _context(cfg, s["chain"], s["key"]) for name, s in cfg["sites"].items()}
    base = sites[cfg["default"]]

    def pick(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None,
             _ctx: ssl.SSLContext) -> int | None:
        if name is None:
            return None
        site = sites.get(name)
        if site is None:
            return ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
        sock.context = site
        return None

    for ctx in sites.values():
        ctx.sni_callback = pick
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((cfg["ip"], cfg["port"]))
    listener.listen(1024)
    print("listening", flush=True)
    while True:
        conn, _peer = listener.accept()
        threading.Thread(target=_serve_one, args=(conn, base, cfg["pacing"]),
                         daemon=True).start()


def _serve_one(conn: socket.socket, ctx: ssl.SSLContext, pacing: int) -> None:
    conn.settimeout(HANDSHAKE_TIMEOUT)
    if pacing:
        conn.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, pacing)
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (OSError, ssl.SSLError):
        conn.close()
        return
    try:
        tls.settimeout(IO_TIMEOUT)
        method, path, length = _read_request(tls)
        if method == "POST":
            _discard(tls, length)
            _respond(tls, UPLOAD_REPLY, len(UPLOAD_REPLY))
        else:
            size = int(path.rsplit("/", 1)[-1]) if path.startswith("/bytes/") else 2
            _respond(tls, BLOB, size)
        with contextlib.suppress(OSError, ssl.SSLError, ValueError):
            tls.unwrap()
    except (OSError, ssl.SSLError, ValueError):
        pass
    finally:
        tls.close()


def _read_request(tls: ssl.SSLSocket) -> tuple[str, str, int]:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = tls.recv(4096)
        if not chunk:
            raise ValueError("client closed before its request")
        head += chunk
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    method, path = lines[0].split(" ")[:2]
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    already = len(head.split(b"\r\n\r\n", 1)[1])
    return method, path, length - already


def _discard(tls: ssl.SSLSocket, left: int) -> None:
    while left > 0:
        chunk = tls.recv(min(left, CHUNK))
        if not chunk:
            raise ValueError("client closed mid-body")
        left -= len(chunk)


def _respond(tls: ssl.SSLSocket, blob: bytes, size: int) -> None:
    tls.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
    view = memoryview(blob)
    while size > 0:
        n = min(size, CHUNK)
        tls.sendall(view[:n])
        size -= n


def silent(ip: str, port: int) -> None:
    """Accept TCP connections on ``ip:port`` and never read, answer or close them."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((ip, port))
    listener.listen(1024)
    print("listening", flush=True)
    held = []
    while True:
        conn, _peer = listener.accept()
        held.append(conn)


# -- clients ---------------------------------------------------------------------------------

_contexts: dict[tuple[Any, ...], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def _client_context(job: dict[str, Any]) -> ssl.SSLContext:
    key = (job["cafile"], job.get("tls_min"), job.get("tls_max"), job.get("ciphers"))
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = ssl.create_default_context(cafile=job["cafile"])
            if job.get("ciphers"):
                ctx.set_ciphers(job["ciphers"])
            if job.get("tls_min"):
                ctx.minimum_version = ssl.TLSVersion[job["tls_min"]]
            if job.get("tls_max"):
                ctx.maximum_version = ssl.TLSVersion[job["tls_max"]]
            _contexts[key] = ctx
        return ctx


def _request(job: dict[str, Any]) -> bytes:
    host = job["sni"] or job["server_ip"]
    if job.get("upload"):
        return (f"POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/"
                f"octet-stream\r\nContent-Length: {job['upload']}\r\nConnection: close\r\n\r\n"
                ).encode()
    return (f"GET {job['path']} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: bench/1\r\n"
            "Accept: */*\r\nConnection: close\r\n\r\n").encode()


def python_job(job: dict[str, Any]) -> dict[str, Any]:
    """One connection with Python ``ssl``; what the client saw."""
    out: dict[str, Any] = {"ok": False, "error": None, "version": None, "body": 0}
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((job["client_ip"], job["client_port"]))
        if job.get("pacing"):
            sock.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, job["pacing"])
        sock.settimeout(job["timeout"])
        sock.connect((job["server_ip"], job["server_port"]))
        tls = _client_context(job).wrap_socket(sock, server_hostname=job["sni"])
        sock = tls
        out["version"] = tls.version()
        tls.sendall(_request(job))
        left = job.get("upload") or 0
        view = memoryview(BLOB)
        while left > 0:
            n = min(left, CHUNK)
            tls.sendall(view[:n])
            left -= n
        data = bytearray()
        while chunk := tls.recv(CHUNK):
            data += chunk
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        out["status"] = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
        out["body"] = len(body)
        out["ok"] = True
    except (OSError, ssl.SSLError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        sock.close()
    return out


_PROTOCOL = re.compile(r"Protocol version: (\S+)")


def openssl_job(job: dict[str, Any]) -> dict[str, Any]:
    """One connection with ``openssl s_client``; what it printed and its exit status."""
    sni = job["sni"]
    argv = ["openssl", "s_client", "-bind", f"{job['client_ip']}:{job['client_port']}",
            "-connect", f"{job['server_ip']}:{job['server_port']}", "-servername", sni,
            "-verify_hostname", sni, "-CAfile", job["cafile"], "-verify_return_error",
            "-brief", "-ign_eof", *job.get("openssl_args", [])]
    request = f"GET {job['path']} HTTP/1.0\r\nHost: {sni}\r\n\r\n".encode()
    out: dict[str, Any] = {"ok": False, "error": None, "version": None, "body": 0}
    try:
        done = subprocess.run(argv, input=request, capture_output=True,
                              timeout=job["timeout"] + 5, check=False)
    except subprocess.TimeoutExpired:
        out["error"] = "s_client timed out"
        return out
    text = done.stderr.decode(errors="replace")
    found = _PROTOCOL.search(text)
    out["version"] = found.group(1) if found else None
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    out["body"] = len(body)
    out["status"] = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else None
    out["ok"] = done.returncode == 0 and out["version"] is not None
    if not out["ok"]:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        out["error"] = f"exit {done.returncode}: " + " | ".join(lines[-4:])[:400]
    return out


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    started = time.time()
    out = openssl_job(job) if job["stack"] == "openssl" else python_job(job)
    out.update(id=job["id"], started=started, ended=time.time())
    return out


def clients(jobs_path: str, results_path: str, workers: int) -> None:
    """Run every job of ``jobs_path`` on ``workers`` threads; one result line per job."""
    with open(jobs_path) as f:
        jobs = [json.loads(line) for line in f]
    lock = threading.Lock()
    with open(results_path, "w") as out, ThreadPoolExecutor(workers) as pool:
        def done(result: dict[str, Any]) -> None:
            with lock:
                out.write(json.dumps(result) + "\n")

        for future in [pool.submit(run_job, job) for job in jobs]:
            done(future.result())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve").add_argument("config")
    s = sub.add_parser("silent")
    s.add_argument("ip")
    s.add_argument("port", type=int)
    c = sub.add_parser("clients")
    c.add_argument("jobs")
    c.add_argument("results")
    c.add_argument("--workers", type=int, default=32)
    args = ap.parse_args(argv)
    if args.cmd == "serve":
        serve(args.config)
    elif args.cmd == "silent":
        silent(args.ip, args.port)
    else:
        clients(args.jobs, args.results, args.workers)


if __name__ == "__main__":
    sys.exit(main())
