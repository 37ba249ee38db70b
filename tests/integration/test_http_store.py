"""The HTTP blob server's own rules: signed uploads only, bytes must match their address."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedledger.chain.base import dev_accounts
from fedledger.codec.commitment import commitment_hex, merkle_root
from fedledger.errors import StoreError
from fedledger.store.access import sign_request, upload_target
from fedledger.store.http import BlobServer, HttpStore
from fedledger.store.sealed import MAGIC

ORG, STRANGER = dev_accounts(2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BlobServer]:
    s = BlobServer(tmp_path / "blobs", writers=[ORG.address]).start()
    try:
        yield s
    finally:
        s.stop()


def test_anyone_reads_only_the_organisation_writes(server: BlobServer) -> None:
    c = HttpStore(server.url, ORG).put(b"an update")
    assert HttpStore(server.url).get(c) == b"an update"  # reading needs no key
    with pytest.raises(StoreError, match="refused the upload: upload not signed by an allowed key"):
        HttpStore(server.url, STRANGER).put(b"spam")
    with pytest.raises(StoreError, match="needs a signing key"):
        HttpStore(server.url).put(b"spam")
    with pytest.raises(StoreError, match="refused the delete"):
        HttpStore(server.url, STRANGER).delete(c)
    assert HttpStore(server.url).has(c)


def test_bytes_that_do_not_match_their_address_are_refused(server: BlobServer) -> None:
    """A signed PUT of other bytes under a commitment is refused: the address is the hash."""
    store = HttpStore(server.url, ORG)
    c = merkle_root(b"what was committed")
    headers = store._signed("PUT", c, b"something else")
    req = urllib.request.Request(
        f"{server.url}/blobs/{commitment_hex(c)}", data=b"something else", method="PUT", headers=headers
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 400
    assert "do not hash to" in json.loads(info.value.read())["error"]
    assert not store.has(c)


def test_listing_and_bad_paths(server: BlobServer) -> None:
    store = HttpStore(server.url, ORG)
    a, b = store.put(b"a"), store.put(b"b")
    assert list(store.commitments()) == sorted([a, b])
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{server.url}/blobs/not-hex", timeout=5)
    assert info.value.code == 404


def test_a_dead_server_is_one_clear_error(tmp_path: Path) -> None:
    s = BlobServer(tmp_path / "b", writers=[ORG.address]).start()
    url = s.url
    s.stop()
    with pytest.raises(StoreError, match=f"blob store at {url} is unreachable"):
        HttpStore(url).get(merkle_root(b"x"))


def _send(url: str, method: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, str(json.loads(exc.read())["error"])


def test_captured_uploads_and_deletes_cannot_be_replayed(server: BlobServer, tmp_path: Path) -> None:
    """A write signature is bound to its server, its bytes and a short expiry, as reads are."""
    other = BlobServer(tmp_path / "other", writers=[ORG.address]).start()
    try:
        body = b"an update"
        c = merkle_root(body)
        path = f"/blobs/{commitment_hex(c)}"
        captured = HttpStore(server.url, ORG)._signed("PUT", c, body)
        # to another server of the same organisation: refused, nothing stored there
        status, why = _send(other.url + path, "PUT", body, captured)
        assert status == 401 and "signed for another server" in why, why
        assert not HttpStore(other.url).has(c)
        # to the server it was made for, with other bytes (a sealed-looking blob the server cannot
        # hash-check): the signature does not cover them, so it is no writer's
        status, why = _send(server.url + path, "PUT", MAGIC + b"forged ciphertext", captured)
        assert status == 403 and "not signed by an allowed key" in why, why
        assert not HttpStore(server.url).has(c)
        # once expired: refused, though server, bytes and key are right
        stale = sign_request(ORG, "PUT", server.url, upload_target(commitment_hex(c), body), ttl_s=-5)
        status, why = _send(server.url + path, "PUT", body, stale)
        assert status == 401 and "stale signature" in why, why
        # the fresh, matching upload is stored
        assert _send(server.url + path, "PUT", body, captured)[0] == 201
        # a delete signed for this server is refused by another holding the same blob
        HttpStore(other.url, ORG).put(body)
        delete = HttpStore(server.url, ORG)._signed("DELETE", c)
        status, why = _send(other.url + path, "DELETE", None, delete)
        assert status == 401 and "signed for another server" in why, why
        assert HttpStore(other.url).has(c)
        stale = sign_request(ORG, "DELETE", server.url, commitment_hex(c), ttl_s=-5)
        assert _send(server.url + path, "DELETE", None, stale)[0] == 401
        assert HttpStore(server.url).has(c)
        # an upload signature cannot be used as a delete, nor the old unbound form at all
        assert _send(server.url + path, "DELETE", None, captured)[0] == 403
        old = {"X-Fedledger-Signature": captured["X-Fedledger-Signature"]}
        status, why = _send(server.url + path, "DELETE", None, old)
        assert status == 401 and "unsigned delete" in why, why
        assert _send(server.url + path, "DELETE", None, delete)[0] == 204
    finally:
        other.stop()
