"""Sealed blobs (issue 18): readers open them, nobody else can, and tampering is caught."""

from __future__ import annotations

import pytest

from fedledger.chain.base import dev_accounts
from fedledger.codec.commitment import merkle_root
from fedledger.errors import BlobSealed, SpecError, StoreError
from fedledger.roles.keys import reader_entry, reader_secret
from fedledger.spec import JobSpec
from fedledger.store.access import ReadAccess, sign_read
from fedledger.store.memory import MemoryStore
from fedledger.store.sealed import OpeningStore, ReaderKey, SealingStore, is_sealed, sealed_readers

A, B, C = dev_accounts(3)


def _keys(*accounts: object) -> list[ReaderKey]:
    out = []
    for a in accounts:
        e = reader_entry(a)  # type: ignore[arg-type]
        out.append(ReaderKey(e["address"], bytes.fromhex(e["key"][2:])))
    return out


def test_readers_open_what_others_cannot() -> None:
    inner = MemoryStore()
    c = SealingStore(inner, _keys(A, B)).put(b"update bytes")
    assert c == merkle_root(b"update bytes")  # the commitment stays over the plaintext
    raw = inner._read(c)
    assert raw is not None and is_sealed(raw) and b"update bytes" not in raw
    assert sealed_readers(raw) == [A.address.lower(), B.address.lower()]
    for who in (A, B):
        assert OpeningStore(inner, who.address, reader_secret(who)).get(c) == b"update bytes"
    with pytest.raises(BlobSealed, match="sealed to other readers"):
        OpeningStore(inner, C.address, reader_secret(C)).get(c)
    with pytest.raises(BlobSealed, match="holds no reader key"):
        OpeningStore(inner).get(c)


def test_a_stolen_wrapped_key_or_altered_ciphertext_does_not_open() -> None:
    inner = MemoryStore()
    c = SealingStore(inner, _keys(A)).put(b"x" * 1000)
    raw = bytearray(inner._read(c) or b"")
    raw[-20] ^= 1
    inner._write(c, bytes(raw))
    with pytest.raises(StoreError, match="does not open"):
        OpeningStore(inner, A.address, reader_secret(A)).get(c)
    # the same envelope under another commitment: the wrapped key is bound to the commitment
    c2 = SealingStore(inner, _keys(A)).put(b"y")
    inner._write(merkle_root(b"z"), inner._read(c2) or b"")
    with pytest.raises(StoreError, match="does not open"):
        OpeningStore(inner, A.address, reader_secret(A)).get(merkle_root(b"z"))


def test_spec_readers_are_hashed_and_checked() -> None:
    base = {"trainers": 3, "validators": 2, "dataset": "digits"}
    plain = JobSpec.from_dict(base)
    with_readers = JobSpec.from_dict({**base, "readers": [reader_entry(A), reader_entry(B)]})
    assert plain.readers == () and with_readers.spec_hash() != plain.spec_hash()
    with pytest.raises(SpecError, match="committee has 2"):
        JobSpec.from_dict({**base, "readers": [reader_entry(A)]})
    with pytest.raises(SpecError, match="twice"):
        JobSpec.from_dict({**base, "readers": [reader_entry(A), reader_entry(A)]})


def test_read_access_verdicts() -> None:
    access = ReadAccess.of([A.address], [B.address], ["https://s:1"])
    what = "0x" + "11" * 32
    assert access.decide({}, what, True).status == 401
    assert access.decide(sign_read(A, "https://s:1", what), what, True).status == 200
    assert access.decide(sign_read(B, "https://s:1", what), what, False).status == 200
    assert access.decide(sign_read(B, "https://s:1", what), what, True).status == 403
    assert access.decide(sign_read(B, "https://s:1", what), what, None).status == 403
    assert access.decide(sign_read(C, "https://s:1", what), what, False).status == 403
    assert access.decide(sign_read(A, "https://other:1", what), what, True).status == 401
    assert access.decide(sign_read(A, "https://s:1", what, ttl_s=-1), what, True).status == 401
    assert access.decide(sign_read(A, "https://s:1", what, ttl_s=3600), what, True).status == 401


class _Refusing(MemoryStore):
    """A blob server's client that is refused every read (as a server with reader lists answers)."""

    def _read(self, commitment: bytes) -> bytes | None:
        from fedledger.errors import ReadRefused

        raise ReadRefused("blob store at https://s:1 refused the read: read refused: unsigned read")


def test_a_refused_global_model_is_a_warning_only_to_an_audit_without_a_key() -> None:
    """Without a key the audit cannot be served a global model (parties only): it says so. With a
    reader's key a refusal is the server withholding from a reader: a discrepancy."""
    from types import SimpleNamespace

    from fedledger.audit.report import AuditState

    spec = JobSpec.from_dict({"trainers": 2, "readers": [reader_entry(a) for a in (A, B)]})
    source = SimpleNamespace(participants={}, job_id=1, provenance="test", findings=[])
    c = merkle_root(b"a global model")
    keyless = AuditState(source, spec, OpeningStore(_Refusing()))  # type: ignore[arg-type]
    assert keyless.keyless and keyless.load_model(c, "model version 1", 1) is None
    [f] = keyless.report.findings
    assert (f.severity, f.check) == ("warning", "readers") and "not readable to this audit" in f.message
    keyed = AuditState(source, spec, OpeningStore(_Refusing(), A.address, reader_secret(A)))  # type: ignore[arg-type]
    assert not keyed.keyless and keyed.load_model(c, "model version 1", 1) is None
    [f] = keyed.report.findings
    assert (f.severity, f.check) == ("error", "blob") and "refused to this reader" in f.message
    assert keyed.sealed_updates([SimpleNamespace(commitment=c)]) == 0  # a keyed audit probes nothing
    assert keyless.sealed_updates([SimpleNamespace(commitment=c)]) == 1
