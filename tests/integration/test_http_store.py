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
from fedledger.store.http import BlobServer, HttpStore

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
    headers = store._signed("PUT", c)
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
