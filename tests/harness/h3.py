"""A small HTTP/3 server made with aioquic, for browsers and curl to talk to over QUIC.

``python -m tests.harness.h3 --cert C --key K [--port 443] [--keylog F]`` answers every
request with ``200`` and a short HTML page, prints ``{"event": "ready"}`` once it listens
and one ``{"event": "request", ...}`` line per request. :func:`start_h3_server` runs it in
a namespace (stop it with ``.stop()``).

What it does not do: serve files, push, or anything but answering GETs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.harness.netns import Netns
from tests.harness.servers import Server

READY_TIMEOUT = 10.0
BODY = b"<html><body>hello over HTTP/3</body></html>\n"


def start_h3_server(ns: Netns, workdir: Path, args: Sequence[str]) -> Server:
    """The server in ``ns``; returns once it listens."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = Server(ns, "h3", [sys.executable, "-m", "tests.harness.h3", *args], workdir=workdir)
    deadline = time.monotonic() + READY_TIMEOUT
    while '"ready"' not in server.text():
        if server.proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"HTTP/3 server did not start: {server.text()[-2000:]}")
        time.sleep(0.05)
    return server


def requests(server: Server) -> list[dict[str, Any]]:
    """The requests the server answered so far."""
    return [line for line in (json.loads(t) for t in server.text().splitlines()
                              if t.startswith("{")) if line.get("event") == "request"]


def _protocol() -> Any:
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.events import ProtocolNegotiated

    class Http3(QuicConnectionProtocol):  # type: ignore[misc]
        h3: H3Connection | None = None

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
                self.h3 = H3Connection(self._quic)
            if self.h3 is None:
                return
            for h3_event in self.h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    headers = dict(h3_event.headers)
                    print(json.dumps({"event": "request",
                                      "path": headers.get(b":path", b"").decode(),
                                      "authority": headers.get(b":authority", b"").decode()}),
                          flush=True)
                    self.h3.send_headers(h3_event.stream_id, [
                        (b":status", b"200"), (b"content-type", b"text/html"),
                        (b"content-length", str(len(BODY)).encode())])
                    self.h3.send_data(h3_event.stream_id, BODY, end_stream=True)
                    self.transmit()

    return Http3


async def _serve(args: argparse.Namespace) -> None:
    from aioquic.asyncio import serve
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
    config.load_cert_chain(args.cert, args.key)
    if args.keylog:
        config.secrets_log_file = open(args.keylog, "a")  # noqa: SIM115 (lives as long as the server)
    await serve(args.host, args.port, configuration=config, create_protocol=_protocol())
    print(json.dumps({"event": "ready"}), flush=True)
    await asyncio.Event().wait()


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.h3")
    parser.add_argument("--host", default="::")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--keylog")
    asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    _main()
