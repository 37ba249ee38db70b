"""Read access control and TLS against a real `fedledger store serve` process (issue 18).

The server runs as the CLI runs it, with a certificate from a throw-away CA made here, a
writer (the organisation), readers (committee and auditor) and a party (a trainer that may
read global models only). Every refusal the issue names is exercised over real sockets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_harness import ThrowawayCA, make_ca

from fedledger.chain.anvil import free_port
from fedledger.chain.base import dev_accounts
from fedledger.codec.commitment import commitment_hex, merkle_root
from fedledger.errors import BlobSealed, ReadRefused, StoreError
from fedledger.roles.keys import reader_entry, reader_secret
from fedledger.store.access import sign_read
from fedledger.store.http import HttpStore
from fedledger.store.sealed import OpeningStore, ReaderKey, SealingStore

ORG, VALIDATOR, AUDITOR, TRAINER, STRANGER = dev_accounts(5)
READERS = [VALIDATOR, AUDITOR]


def _reader_keys() -> list[ReaderKey]:
    entries = [reader_entry(a) for a in READERS]
    return [ReaderKey(e["address"], bytes.fromhex(e["key"][2:])) for e in entries]


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


def _serve(tmp: Path, ca: ThrowawayCA | None, *extra: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    log = tmp / f"serve-{port}.log"
    tls = ["--tls-cert", str(ca.cert), "--tls-key", str(ca.key)] if ca else []
    args = [sys.executable, "-m", "fedledger.cli.main", "store", "serve", "--dir", str(tmp / f"blobs-{port}")]
    args += ["--port", str(port), "--writer", ORG.address, *tls, *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    url = f"{'https' if ca else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            HttpStore(url, ORG, ca_bundle=ca.ca if ca else None, timeout=1).has(b"\0" * 32)
            return proc, url, log
        except StoreError:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("store serve did not start")


@pytest.fixture
def server(tmp_path: Path, ca: ThrowawayCA) -> Iterator[tuple[str, Path]]:
    lists = [a for r in READERS for a in ("--reader", r.address)]
    proc, url, log = _serve(tmp_path, ca, *lists, "--party", TRAINER.address, "--reader", ORG.address)
    try:
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _get(url: str, headers: dict[str, str], ca: ThrowawayCA) -> tuple[int, bytes]:
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca.ca))
    try:
        req = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return int(r.status), bytes(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_readers_open_sealed_updates_parties_read_global_models(
    server: tuple[str, Path], ca: ThrowawayCA
) -> None:
    url, _ = server
    org = HttpStore(url, ORG, ca_bundle=ca.ca)
    update = SealingStore(org, _reader_keys()).put(b"an individual update")
    global_model = org.put(b"a global model")
    for reader in READERS:
        store = OpeningStore(HttpStore(url, reader, ca_bundle=ca.ca), reader.address, reader_secret(reader))
        assert store.get(update) == b"an individual update"
        assert store.get(global_model) == b"a global model"
    trainer = HttpStore(url, TRAINER, ca_bundle=ca.ca)
    assert trainer.get(global_model) == b"a global model"
    with pytest.raises(ReadRefused, match="may not read this"):
        trainer.get(update)
    # the operator's disk holds ciphertext only; without a reader key the update is sealed
    with pytest.raises(BlobSealed, match="sealed to its readers"):
        OpeningStore(HttpStore(url, ORG, ca_bundle=ca.ca)).get(update)


def test_the_four_refusals(server: tuple[str, Path], ca: ThrowawayCA, tmp_path: Path) -> None:
    url, log = server
    update = SealingStore(HttpStore(url, ORG, ca_bundle=ca.ca), _reader_keys()).put(b"secret update")
    path = f"{url}/blobs/{commitment_hex(update)}"
    # 1. unauthenticated
    status, body = _get(path, {}, ca)
    assert status == 401 and b"unsigned read" in body
    # 2. a stale signature (a captured request replayed after its expiry)
    stale = sign_read(VALIDATOR, url, commitment_hex(update), ttl_s=-5)
    status, body = _get(path, stale, ca)
    assert status == 401 and b"stale signature" in body
    # 3. a reader not on the list: the same 403 whether or not the blob exists
    missing = merkle_root(b"never stored")
    status, body = _get(path, sign_read(STRANGER, url, commitment_hex(update)), ca)
    status2, body2 = _get(
        f"{url}/blobs/{commitment_hex(missing)}", sign_read(STRANGER, url, commitment_hex(missing)), ca
    )
    assert (status, status2) == (403, 403)
    assert body == body2  # nothing tells the stranger which of the two exists
    # 4. plain HTTP to the TLS server
    plain = HttpStore(url.replace("https://", "http://"), VALIDATOR)
    with pytest.raises(StoreError, match="speaks TLS only"):
        plain.get(update)
    # every refusal is logged with its address
    time.sleep(0.2)
    text = log.read_text()
    assert "unauthenticated client 127.0.0.1" in text
    assert STRANGER.address.lower() in text
    assert VALIDATOR.address.lower() in text or "stale signature" in text
    assert "refused plain HTTP" in text


def test_a_signature_for_another_server_or_blob_is_refused(
    server: tuple[str, Path], ca: ThrowawayCA, tmp_path: Path
) -> None:
    url, _ = server
    update = SealingStore(HttpStore(url, ORG, ca_bundle=ca.ca), _reader_keys()).put(b"u")
    what = commitment_hex(update)
    other = sign_read(VALIDATOR, "https://127.0.0.1:1", what)
    assert _get(f"{url}/blobs/{what}", other, ca)[0] == 401
    other_blob = sign_read(VALIDATOR, url, commitment_hex(merkle_root(b"x")))
    # a signature over another commitment recovers to some other address: never a reader
    status, _ = _get(f"{url}/blobs/{what}", other_blob, ca)
    assert status == 403
    # listing is for readers only
    assert _get(f"{url}/blobs", sign_read(TRAINER, url, "list"), ca)[0] == 403
    assert json.loads(_get(f"{url}/blobs", sign_read(VALIDATOR, url, "list"), ca)[1]) == [what]


def test_an_untrusted_certificate_is_refused(server: tuple[str, Path]) -> None:
    url, _ = server
    with pytest.raises(StoreError, match=r"presented a certificate this node does not trust .*--ca-bundle"):
        HttpStore(url, VALIDATOR).has(b"\0" * 32)  # the system trust store does not hold the test CA


def test_without_reader_lists_reads_stay_open(tmp_path: Path) -> None:
    proc, url, _ = _serve(tmp_path, None)
    try:
        c = HttpStore(url, ORG).put(b"open as before")
        assert HttpStore(url).get(c) == b"open as before"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
