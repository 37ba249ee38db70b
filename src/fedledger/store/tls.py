"""TLS for blob servers and their clients, standard library `ssl` only.

The handshake runs in each connection's own thread, not in the accept loop, so a client
that connects and says nothing (or speaks plain HTTP) cannot stall every other reader. Plain
HTTP sent to a TLS server is answered, in plain HTTP, with a 400 that says to use https, then
the connection is closed: a misconfigured peer gets one clear line instead of a reset.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger("fedledger.store")
_HANDSHAKE = 0x16  # the first byte of every TLS record that opens a connection
_PLAIN_BODY = b'{"error": "this blob server speaks TLS only: use an https:// URL"}'
PLAIN_REFUSAL = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + f"Content-Length: {len(_PLAIN_BODY)}\r\n\r\n".encode()
    + _PLAIN_BODY
)


def server_context(cert: Path | str, key: Path | str) -> ssl.SSLContext:
    """A TLS 1.2+ server context from a PEM certificate chain and its private key."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def client_context(ca_bundle: Path | str | None) -> ssl.SSLContext:
    """The system's trust store, or only `ca_bundle` (a consortium's own CA) when given."""
    return ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)


class TlsHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that wraps each accepted connection in TLS inside its thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, context: ssl.SSLContext) -> None:
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(30)
        try:
            first = request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if not first or first[0] != _HANDSHAKE:
            log.warning("refused plain HTTP from %s on a TLS blob server", client_address[0])
            with contextlib.suppress(OSError):
                request.sendall(PLAIN_REFUSAL)
            return
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.warning("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        super().finish_request(wrapped, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)
