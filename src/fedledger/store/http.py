"""Blobs over HTTP: a content-addressed server each organisation runs, and its client.

The server (`fedledger store serve`) keeps blobs in a `LocalStore` and answers
`GET/HEAD /blobs/<commitment>` and `GET /blobs` (the list) to anyone, or, with reader lists,
only to signed reads by those on them (`access.py`; 401 unsigned or stale, 403 not a reader),
and `PUT/DELETE /blobs/<commitment>` only when signed by an allowed key: an EIP-191
signature from one of the organisation's addresses over the method, this server, the
commitment (for an upload also the SHA-256 of its bytes) and a short expiry, as reads are
signed, so a captured upload or delete cannot be replayed elsewhere or later. Integrity
needs no trust in the server: the client re-hashes every read (`BlobStore.get`), and the
server refuses an upload whose bytes do not hash to the address it is put under, unless
the bytes are sealed to their readers (`sealed.py`). With a certificate and key it speaks
https only (`tls.py`). Standard library only, so any node can run it.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount

from fedledger.codec.commitment import HASH_SIZE, commitment_hex, merkle_root
from fedledger.errors import ReadRefused, StoreError
from fedledger.store.access import (
    LIST,
    READ_HEADERS,
    ReadAccess,
    authenticate,
    server_id,
    sign_read,
    sign_request,
    upload_target,
)
from fedledger.store.base import BlobStore
from fedledger.store.local import LocalStore
from fedledger.store.sealed import is_sealed
from fedledger.store.tls import TlsHTTPServer, client_context, server_context

log = logging.getLogger("fedledger.store")
MAX_BLOB = 1 << 30  # 1 GiB: larger uploads are refused before they are read


def _parse(path: str) -> bytes | None:
    """The commitment in /blobs/<0x hex>, or None."""
    prefix = "/blobs/"
    if not path.startswith(prefix):
        return None
    text = path[len(prefix) :].removeprefix("0x")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    return raw if len(raw) == HASH_SIZE else None


def _head(store: LocalStore, commitment: bytes) -> bytes | None:
    """The first bytes of a stored blob (enough to tell sealed from plaintext), or None."""
    try:
        with store.path_for(commitment).open("rb") as f:
            return f.read(16)
    except OSError:
        return None


class BlobServer:
    """A `LocalStore` served over HTTP(S) on `host:port` (port 0 picks a free one).

    With `readers` (or `parties`) every read must be signed (`store/access.py`); without them
    reads are open, as before issue 18. With `tls` = (certificate, key) it speaks https only.
    """

    def __init__(
        self,
        root: Path | str,
        writers: Iterable[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        readers: Iterable[str] = (),
        parties: Iterable[str] = (),
        public_urls: Iterable[str] = (),
        tls: tuple[Path | str, Path | str] | None = None,
    ) -> None:
        self.store = LocalStore(root)
        self.writers = {w.lower() for w in writers}
        readers, parties = list(readers), list(parties)
        # the URLs this server answers to, that signed requests must be bound to (+ its own, below)
        self.names = {server_id(u) for u in public_urls}
        self.access: ReadAccess | None = ReadAccess.of(readers, parties, ()) if readers or parties else None
        if self.access is not None:
            self.access.names = self.names  # one set: the server's own URL is added below
        store, writers_, access, names = self.store, self.writers, self.access, self.names

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt: str, *args: object) -> None:
                log.debug("%s %s", self.address_string(), fmt % args)

            def _reply(self, code: int, body: bytes = b"", kind: str = "application/octet-stream") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _error(self, code: int, message: str) -> None:
                self._reply(code, json.dumps({"error": message}).encode(), "application/json")

            def _write_refused(self, method: str, what: str) -> bool:
                """Whether an upload or delete was refused (and answered): 401 unsigned or stale,
                bound to another server or other bytes; 403 signed by a key that may not write."""
                headers = {h: str(self.headers.get(h, "")) for h in READ_HEADERS}
                verdict = authenticate(headers, method, what, names)
                if verdict.status == 200 and verdict.address in writers_:
                    return False
                who = verdict.address or f"unauthenticated client {self.client_address[0]}"
                log.warning("refused %s of %s by %s: %s", method, what, who, verdict.reason)
                kind = "upload" if method == "PUT" else "delete"
                if verdict.status == 401:
                    self._error(401, f"{kind} not authenticated: {verdict.reason}")
                else:
                    self._error(403, f"{kind} not signed by an allowed key")
                return True

            def _refused(self, what: str, data: bytes | None) -> bool:
                """Whether the read was refused (and answered); each refusal is logged with its address."""
                if access is None:
                    return False
                headers = {h: str(self.headers.get(h, "")) for h in READ_HEADERS}
                verdict = access.decide(headers, what, None if data is None else is_sealed(data))
                if verdict.status == 200:
                    return False
                who = verdict.address or f"unauthenticated client {self.client_address[0]}"
                log.warning("refused read of %s by %s: %s", what, who, verdict.reason)
                if verdict.status == 401:
                    self._error(401, f"read refused: {verdict.reason}; sign reads with a reader's key")
                else:
                    self._error(403, f"read refused: {verdict.address} may not read this")
                return True

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/blobs":
                    if self._refused(LIST, None):
                        return
                    body = json.dumps([commitment_hex(c) for c in store.commitments()]).encode()
                    self._reply(200, body, "application/json")
                    return
                c = _parse(self.path)
                if c is None:
                    self._error(404, f"no such path {self.path}; use /blobs/<commitment>")
                    return
                data = store._read(c)
                if self._refused(commitment_hex(c), data):
                    return
                if data is None:
                    self._error(404, f"no blob under commitment {commitment_hex(c)}")
                else:
                    self._reply(200, data)

            def do_HEAD(self) -> None:
                c = _parse(self.path)
                if c is None:
                    self._reply(404)
                    return
                data = _head(store, c) if access is not None else None
                if self._refused(commitment_hex(c), data):
                    return
                self._reply(200 if store._contains(c) else 404)

            def do_PUT(self) -> None:
                c = _parse(self.path)
                length = int(self.headers.get("Content-Length", "0"))
                if c is None:
                    self._error(404, f"no such path {self.path}")
                    return
                if length > MAX_BLOB:
                    self._error(413, f"blob of {length} bytes is over the {MAX_BLOB}-byte limit")
                    return
                data = self.rfile.read(length)
                if self._write_refused("PUT", upload_target(commitment_hex(c), data)):
                    return
                if not is_sealed(data) and merkle_root(data) != c:
                    # a sealed update is addressed by its plaintext's root, which only its
                    # readers can check; the writer's signature vouches for it here
                    self._error(400, f"bytes do not hash to {commitment_hex(c)}")
                    return
                store._write(c, data)
                self._reply(201)

            def do_DELETE(self) -> None:
                c = _parse(self.path)
                if c is None:
                    self._error(404, f"no such path {self.path}")
                    return
                if self._write_refused("DELETE", commitment_hex(c)):
                    return
                self._reply(204 if store._remove(c) else 404)

        if tls is None:
            self.httpd: ThreadingHTTPServer = ThreadingHTTPServer((host, port), Handler)
        else:
            self.httpd = TlsHTTPServer((host, port), Handler, server_context(*tls))
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://{host}:{self.httpd.server_address[1]}"
        self.names.add(server_id(self.url))
        if host == "127.0.0.1":
            self.names.add(server_id(f"{scheme}://localhost:{self.httpd.server_address[1]}"))
        self._thread: threading.Thread | None = None

    def start(self) -> BlobServer:
        """Serves in a background thread (tests, simulations); `serve_forever` for the CLI."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class HttpStore(BlobStore):
    """A `BlobStore` on a `BlobServer`; `account` signs uploads, deletes and reads.

    `ca_bundle` is the CA certificate(s) an https server's certificate must chain to (a
    consortium's own CA); without it the system's trust store is used.
    """

    def __init__(
        self,
        url: str,
        account: LocalAccount | None = None,
        *,
        timeout: float = 30.0,
        ca_bundle: Path | str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.account = account
        self.timeout = timeout
        self._tls = client_context(ca_bundle) if self.url.startswith("https://") else None

    def _request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Any:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout, context=self._tls)
        except urllib.error.HTTPError as exc:
            return exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, ssl.SSLCertVerificationError):  # reached, but not trusted
                raise StoreError(
                    f"blob store at {self.url} presented a certificate this node does not trust "
                    f"({reason.verify_message}); give the consortium's CA with ca_bundle / --ca-bundle"
                ) from None
            raise StoreError(f"blob store at {self.url} is unreachable: {reason}") from None

    def _signed(self, method: str, commitment: bytes, body: bytes = b"") -> dict[str, str]:
        """Headers of an upload (bound to `body`) or delete, signed for this server, expiring soon."""
        if self.account is None:
            raise StoreError(f"{method} on {self.url} needs a signing key; this HttpStore has none")
        what = commitment_hex(commitment)
        target = upload_target(what, body) if method == "PUT" else what
        return sign_request(self.account, method, self.url, target)

    def _reading(self, what: str) -> dict[str, str]:
        """Signed-read headers when this store has a key (servers without reader lists ignore them)."""
        return sign_read(self.account, self.url, what) if self.account is not None else {}

    def _check_read(self, resp: Any) -> None:
        if resp.status in (401, 403):
            raise ReadRefused(f"blob store at {self.url} refused the read: {self._why(resp)}")

    @staticmethod
    def _why(resp: Any) -> str:
        try:
            return str(json.loads(resp.read())["error"])
        except Exception:
            return f"HTTP {resp.status}"

    def _read(self, commitment: bytes) -> bytes | None:
        what = commitment_hex(commitment)
        with self._request("GET", f"/blobs/{what}", None, self._reading(what)) as resp:
            self._check_read(resp)
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise StoreError(f"blob store at {self.url}: {self._why(resp)}")
            return bytes(resp.read())

    def _contains(self, commitment: bytes) -> bool:
        what = commitment_hex(commitment)
        with self._request("HEAD", f"/blobs/{what}", None, self._reading(what)) as resp:
            if resp.status in (401, 403):  # a HEAD reply has no body to say why
                raise ReadRefused(f"blob store at {self.url} refused the read (HTTP {resp.status})")
            return bool(resp.status == 200)

    def _write(self, commitment: bytes, data: bytes) -> None:
        headers = self._signed("PUT", commitment, data) | {"Content-Type": "application/octet-stream"}
        with self._request("PUT", f"/blobs/{commitment_hex(commitment)}", data, headers) as resp:
            if resp.status != 201:
                raise StoreError(f"blob store at {self.url} refused the upload: {self._why(resp)}")

    def _remove(self, commitment: bytes) -> bool:
        with self._request(
            "DELETE", f"/blobs/{commitment_hex(commitment)}", None, self._signed("DELETE", commitment)
        ) as resp:
            if resp.status in (401, 403):
                raise StoreError(f"blob store at {self.url} refused the delete: {self._why(resp)}")
            return bool(resp.status == 204)

    def _list(self) -> Iterator[bytes]:
        with self._request("GET", "/blobs", None, self._reading(LIST)) as resp:
            self._check_read(resp)
            if resp.status != 200:
                raise StoreError(f"blob store at {self.url}: {self._why(resp)}")
            return iter([bytes.fromhex(h.removeprefix("0x")) for h in json.loads(resp.read())])


def open_store(
    where: str, account: LocalAccount | None = None, *, ca_bundle: Path | str | None = None
) -> BlobStore:
    """A store from a location: an http(s) URL of `fedledger store serve`, else a directory."""
    if where.startswith(("http://", "https://")):
        return HttpStore(where, account, ca_bundle=ca_bundle)
    return LocalStore(where)
