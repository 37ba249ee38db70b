"""Blobs sealed to their readers: HPKE-wrapped content keys, AES-256-GCM content (issue 18).

An individual update is what gradient inversion reconstructs training data from, so a trainer
stores it encrypted to the job's readers (the committee and the spec's auditors) and a blob
server's operator, or a leaked disk, learns nothing from it. The commitment stays over the
*plaintext's* Merkle root, so validation, fraud proofs and the audit are unchanged: a reader
opens the envelope and `BlobStore.get` then re-hashes the plaintext as for any blob.

Construction (everything from the `cryptography` package, no home-made primitive):

- a fresh 32-byte content key per blob; the plaintext is AES-256-GCM under it with a zero
  nonce (the key is used once) and the envelope header as associated data, so a reader list
  cannot be swapped under a ciphertext;
- per reader, the content key is sealed with RFC 9180 HPKE base mode (DHKEM(X25519,
  HKDF-SHA256), HKDF-SHA256, AES-256-GCM), its `info` binding the commitment, so a wrapped key
  cannot be moved to another blob;
- a reader's X25519 key is derived from its Ethereum key (HKDF, a fixed label), so a party
  keeps one secret: the key that signs its transactions and its read requests.

Envelope: MAGIC | u16 readers | readers × (20-byte address | HPKE ciphertext of the key) |
AES-GCM ciphertext. MAGIC cannot begin a safetensors blob (that starts with a little-endian
u64 header length far below 2^56), so a server can tell sealed bytes from plaintext.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedledger.codec.commitment import commitment_hex, merkle_root
from fedledger.errors import BlobSealed, StoreError
from fedledger.store.base import BlobStore, WrappingStore, check_commitment

MAGIC = b"\xffFLSEAL1"
_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)
_WRAPPED = 32 + 32 + 16  # X25519 encapsulated key, content key, tag
_NONCE = b"\0" * 12
_LABEL = b"fedledger read key v1"


@dataclass(frozen=True)
class ReaderKey:
    """One reader: its Ethereum address (signs read requests) and X25519 public key (opens blobs)."""

    address: str
    key: bytes

    @property
    def address_bytes(self) -> bytes:
        return bytes.fromhex(self.address.removeprefix("0x").lower())


def read_key(private_key: bytes) -> X25519PrivateKey:
    """The X25519 key a party opens sealed blobs with, derived from its 32-byte Ethereum key."""
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(private_key)
    return X25519PrivateKey.from_private_bytes(seed)


def public_read_key(private_key: bytes) -> bytes:
    """The 32 raw bytes of the public half of `read_key`: what the spec lists for a reader."""
    return read_key(private_key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def is_sealed(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


def _info(commitment: bytes) -> bytes:
    return b"fedledger-sealed-blob:" + commitment


def seal(plaintext: bytes, readers: Sequence[ReaderKey], commitment: bytes | None = None) -> bytes:
    """The envelope of `plaintext` for `readers`; its commitment is the plaintext's root.

    A caller that has already hashed the plaintext passes `commitment` (hashing 80 MB costs
    more than encrypting it).
    """
    if not readers:
        raise StoreError("a sealed blob needs at least one reader")
    commitment = merkle_root(plaintext) if commitment is None else commitment
    content_key = AESGCM.generate_key(bit_length=256)
    parts = [MAGIC, struct.pack(">H", len(readers))]
    for r in readers:
        wrapped = _SUITE.encrypt(content_key, X25519PublicKey.from_public_bytes(r.key), _info(commitment))
        parts += [r.address_bytes, wrapped]
    header = b"".join(parts)
    return header + AESGCM(content_key).encrypt(_NONCE, plaintext, header + commitment)


def _header(blob: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    """(header length, [(address, wrapped key)]), or StoreError on a truncated envelope."""
    if len(blob) < len(MAGIC) + 2:
        raise StoreError("sealed blob is truncated")
    (n,) = struct.unpack_from(">H", blob, len(MAGIC))
    pos, entries = len(MAGIC) + 2, []
    for _ in range(n):
        if len(blob) < pos + 20 + _WRAPPED:
            raise StoreError("sealed blob is truncated")
        entries.append((blob[pos : pos + 20], blob[pos + 20 : pos + 20 + _WRAPPED]))
        pos += 20 + _WRAPPED
    return pos, entries


def sealed_readers(blob: bytes) -> list[str]:
    """The addresses a sealed blob is sealed to (public: its header names them)."""
    return ["0x" + a.hex() for a, _ in _header(blob)[1]]


def open_sealed(blob: bytes, commitment: bytes, address: str, key: X25519PrivateKey) -> bytes:
    """The plaintext of a sealed blob, for the reader `address` holding `key`.

    BlobSealed if this reader is not among the blob's; BlobIntegrityError-like StoreError if
    the envelope was altered. The caller still re-hashes the plaintext against `commitment`.
    """
    end, entries = _header(blob)
    me = bytes.fromhex(address.removeprefix("0x").lower())
    wrapped = next((w for a, w in entries if a == me), None)
    if wrapped is None:
        raise BlobSealed(f"blob {commitment_hex(commitment)} is sealed to other readers, not {address}")
    try:
        content_key = _SUITE.decrypt(wrapped, key, _info(commitment))
        return AESGCM(content_key).decrypt(_NONCE, blob[end:], blob[:end] + commitment)
    except (InvalidTag, ValueError):
        raise StoreError(
            f"sealed blob {commitment_hex(commitment)} does not open: altered, or not for this key"
        ) from None


class SealingStore(WrappingStore):
    """Wraps a store so that every `put` is sealed to `readers`; reads go to the inner store.

    A trainer writes through this; validators write aggregates (global models, readable by
    every party) through the plain store underneath.
    """

    def __init__(self, inner: BlobStore, readers: Sequence[ReaderKey]) -> None:
        super().__init__(inner)
        self.readers = list(readers)

    def put(self, data: bytes, *, root: bytes | None = None) -> bytes:
        data = bytes(data)
        commitment = merkle_root(data) if root is None else check_commitment(root)
        self.inner._write(commitment, seal(data, self.readers, commitment))
        return commitment

    def get(self, commitment: bytes) -> bytes:
        return self.inner.get(commitment)

    def has(self, commitment: bytes) -> bool:
        return self.inner.has(commitment)


class OpeningStore(WrappingStore):
    """Wraps a store so that sealed blobs are opened with this party's key before the hash check.

    Without a key (`address`/`key` None) a sealed blob raises BlobSealed: the caller can say
    the update was not readable to it instead of reporting a hash mismatch.
    """

    def __init__(
        self, inner: BlobStore, address: str | None = None, key: X25519PrivateKey | None = None
    ) -> None:
        super().__init__(inner)
        self.address, self.key = address, key

    def _read(self, commitment: bytes) -> bytes | None:
        raw = self.inner._read(commitment)
        if raw is None or not is_sealed(raw):
            return raw
        if self.key is None or self.address is None:
            raise BlobSealed(
                f"blob {commitment_hex(commitment)} is sealed to its readers "
                f"({', '.join(sealed_readers(raw))}); this party holds no reader key"
            )
        return open_sealed(raw, commitment, self.address, self.key)


def random_reader() -> tuple[bytes, ReaderKey]:
    """(an Ethereum-sized private key, its ReaderKey with a dummy address): tests and benches."""
    private = os.urandom(32)
    return private, ReaderKey("0x" + os.urandom(20).hex(), public_read_key(private))
