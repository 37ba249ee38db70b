"""Key material for secure aggregation: one long-term X25519 key per trainer, everything else derived.

Each trainer registers one X25519 public key on chain when it joins a secure-aggregation job;
the chain is the bulletin board, so there is no key server to trust. Every per-round secret is
derived from that key with HKDF-SHA256 under a label that names its purpose and the round:

    pairwise mask seed   s_ij(r) = HKDF(X25519(sk_i, pk_j), info = "mask"  ‖ ctx(r) ‖ min(i,j) ‖ max(i,j))
    share key (i → j)    k_ij(r) = HKDF(X25519(sk_i, pk_j), info = "share" ‖ ctx(r) ‖ i ‖ j)
    self-mask seed       b_i(r)  = HKDF(sk_i,               info = "self"  ‖ ctx(r))
    dealer randomness            = HKDF(sk_i,               info = "deal"  ‖ ctx(r) ‖ label)

Why derive rather than draw: a seed revealed to unmask round r (a dropped neighbour's pairwise
seed) says nothing about round r+1, whose seeds come from other HKDF labels; and a trainer that
crashes and restarts re-derives exactly the masks and shares it already uploaded, so it can
never upload two different maskings of one update (which would leak their difference).

`ctx(r)` binds the coordinator deployment (`domain`), the job and the round, so no secret of
one job or contract version is ever valid in another. Only `cryptography`'s primitives are
used: X25519, HKDF-SHA256, ChaCha20 (the PRG) and ChaCha20-Poly1305 (share encryption).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedledger.errors import KeyMismatch

PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
_LABEL = b"fedledger/secagg/v1/"


@dataclass(frozen=True)
class RoundContext:
    """Which round a secret belongs to: coordinator deployment (`domain`), job id, round number."""

    job: int
    round: int
    domain: bytes = b""

    def encode(self) -> bytes:
        """Fixed-width, unambiguous bytes: len(domain) ‖ domain ‖ job (32 B) ‖ round (8 B)."""
        if not (0 <= self.job < 2**256 and 0 <= self.round < 2**64 and len(self.domain) < 256):
            raise ValueError(f"round context out of range: {self}")
        return (
            bytes([len(self.domain)])
            + self.domain
            + self.job.to_bytes(32, "big")
            + self.round.to_bytes(8, "big")
        )


def party_bytes(party: str) -> bytes:
    """A participant's id as bytes for labels: its lower-case text (an address is case-insensitive)."""
    raw = party.lower().encode()
    if not 0 < len(raw) < 256:
        raise ValueError(f"participant id {party!r} must be 1-255 bytes")
    return bytes([len(raw)]) + raw


def hkdf(ikm: bytes, info: bytes, length: int = SEED_BYTES) -> bytes:
    """HKDF-SHA256 with an empty salt (RFC 5869 §3.1: fine when the IKM is already uniform-ish)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=_LABEL + info).derive(ikm)


def keystream(key: bytes, nbytes: int) -> bytes:
    """`nbytes` of ChaCha20 keystream under a 32-byte key, counter and nonce zero.

    Each key here is used for exactly one stream, so a fixed nonce never repeats a
    (key, nonce) pair with different content.
    """
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    return encryptor.update(bytes(nbytes))


# -- long-term keys ----------------------------------------------------------------------------


def generate_private_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def private_key_from_seed(seed: bytes) -> X25519PrivateKey:
    """A deterministic X25519 key from secret seed bytes (e.g. an organisation's signing key).

    Lets a node keep one secret: its X25519 key is re-derived, never stored beside it.
    """
    if len(seed) < 16:
        raise ValueError("an X25519 key seed needs at least 16 bytes of secret")
    return X25519PrivateKey.from_private_bytes(hkdf(seed, b"x25519-key"))


def public_key_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def load_public_key(raw: bytes, owner: str) -> X25519PublicKey:
    """The X25519 public key in `raw`, or KeyMismatch naming its owner."""
    if not isinstance(raw, bytes | bytearray) or len(raw) != PUBLIC_KEY_BYTES:
        raise KeyMismatch(f"public key of {owner} is not {PUBLIC_KEY_BYTES} bytes")
    return X25519PublicKey.from_public_bytes(bytes(raw))


def agree(key: X25519PrivateKey, peer_public: bytes, peer: str) -> bytes:
    """X25519(sk, pk_peer); a low-order peer key (all-zero shared secret) is refused."""
    try:
        return key.exchange(load_public_key(peer_public, peer))
    except ValueError:
        raise KeyMismatch(f"public key of {peer} is a low-order point; no shared secret exists") from None


# -- per-round derivations ---------------------------------------------------------------------


def pairwise_seed(shared: bytes, ctx: RoundContext, a: str, b: str) -> bytes:
    """s_ab(r) from the X25519 shared secret; symmetric in (a, b), so both ends derive one seed."""
    lo, hi = sorted((a.lower(), b.lower()))
    return hkdf(shared, b"mask" + ctx.encode() + party_bytes(lo) + party_bytes(hi))


def share_key(shared: bytes, ctx: RoundContext, sender: str, recipient: str) -> bytes:
    """The AEAD key for shares sent from `sender` to `recipient` in this round (directional)."""
    return hkdf(shared, b"share" + ctx.encode() + party_bytes(sender) + party_bytes(recipient))


def self_seed(key: X25519PrivateKey, ctx: RoundContext) -> bytes:
    """b_i(r): the self-mask seed, known only to its owner until its neighbours reveal shares."""
    return hkdf(key.private_bytes_raw(), b"self" + ctx.encode())


def dealer_key(key: X25519PrivateKey, ctx: RoundContext, label: bytes) -> bytes:
    """Key of the stream that draws the random polynomial coefficients for one shared secret."""
    return hkdf(key.private_bytes_raw(), b"deal" + ctx.encode() + label)
