"""Wire formats of secure aggregation: a dealer's share bundle and a committer's reveal.

Both travel through the blob store as canonical JSON (sorted keys, no spaces, hex bytes), so
they are content-addressed like every other blob and the audit can re-read them. Parsing is
strict: anything that does not re-encode to the same bytes, names another round, or lacks a
field is refused with a ShareError naming the party at fault.

Share bundle of dealer d (uploaded with its masked update):

    key       d's X25519 public key (must equal the on-chain directory's)
    commit    H(secret) for its self-mask seed b_d and for each pairwise seed s_dm, m ∈ N(d)
    shares    per neighbour h: H(share) for each of d's 1 + k secrets (public, so a revealed
              share can be checked by anyone) and a ChaCha20-Poly1305 box of the shares,
              readable only by h (associated data binds round, dealer and holder)

Secrets of a dealer are numbered: 0 is b_d, 1 + i is s_{d, N(d)[i]}.

Reveal of committer h (posted once the chain has fixed the committers C):

    self      share of b_d for each neighbour dealer d ∈ C
    pairs     share of s_dm for each neighbour dealer d and each m ∈ N(d) with exactly one of
              d, m in C (the masks the committed sum still carries)
    seeds     h's own s_hj for each dropped neighbour j
    faults    the neighbour dealers whose shares h could not use, with the reason (a box sealed
              for another holder, shares unlike their commitments, a key not the directory's):
              public complaints the validators and the audit record against the dealer
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fedledger.errors import ShareError
from fedledger.privacy.keys import PUBLIC_KEY_BYTES, SEED_BYTES, RoundContext, party_bytes

VERSION = 1
HASH_BYTES = 32


def secret_commitment(ctx: RoundContext, label: bytes, secret: bytes) -> bytes:
    """H(secret) bound to the round and the secret's role; hiding because seeds are 256-bit random."""
    return hashlib.sha256(b"fedledger/secagg/v1/secret" + ctx.encode() + label + secret).digest()


def share_commitment(ctx: RoundContext, dealer: str, holder: str, index: int, share: bytes) -> bytes:
    """H(share) bound to round, dealer, holder and secret number: a revealed share checks against it."""
    tag = party_bytes(dealer) + party_bytes(holder) + index.to_bytes(4, "big")
    return hashlib.sha256(b"fedledger/secagg/v1/share" + ctx.encode() + tag + share).digest()


def self_label(dealer: str) -> bytes:
    return b"self" + party_bytes(dealer)


def pair_label(a: str, b: str) -> bytes:
    """Symmetric in (a, b): both ends commit to their common seed under one label."""
    lo, hi = sorted((a.lower(), b.lower()))
    return b"pair" + party_bytes(lo) + party_bytes(hi)


def box_associated_data(ctx: RoundContext, dealer: str, holder: str) -> bytes:
    return b"fedledger/secagg/v1/box" + ctx.encode() + party_bytes(dealer) + party_bytes(holder)


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _load(raw: bytes, what: str, party: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ShareError(f"{what} of {party} is not JSON", party=party) from None
    if not isinstance(doc, dict) or canonical_json(doc) != bytes(raw):
        raise ShareError(f"{what} of {party} is not canonical JSON", party=party)
    return doc


def _hex(value: Any, size: int | None, what: str, party: str) -> bytes:
    try:
        if not isinstance(value, str) or not value.startswith("0x"):
            raise ValueError
        out = bytes.fromhex(value[2:])
    except ValueError:
        raise ShareError(f"{what} of {party} is not 0x-hex", party=party) from None
    if size is not None and len(out) != size:
        raise ShareError(f"{what} of {party} is {len(out)} bytes, expected {size}", party=party)
    return out


def _h(b: bytes) -> str:
    return "0x" + b.hex()


def _header(doc: Mapping[str, Any], ctx: RoundContext, role: str, party: str, what: str) -> None:
    if doc.get("v") != VERSION:
        raise ShareError(f"{what} of {party} has version {doc.get('v')!r}, expected {VERSION}", party=party)
    if doc.get("ctx") != _h(ctx.encode()):
        raise ShareError(f"{what} of {party} is for another job or round", party=party)
    if doc.get(role) != party:
        raise ShareError(f"{what} claims to be from {doc.get(role)!r}, not {party}", party=party)


# -- share bundle ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HolderShares:
    commitments: tuple[bytes, ...]  # H(share) for secret 0 .. k, as published
    box: bytes  # AEAD ciphertext of the 1 + k shares, for this holder only


@dataclass(frozen=True)
class ShareBundle:
    dealer: str
    public_key: bytes
    self_commitment: bytes
    pair_commitments: Mapping[str, bytes]  # neighbour -> H(s_dealer,neighbour)
    holders: Mapping[str, HolderShares]  # neighbour -> its shares

    def encode(self, ctx: RoundContext) -> bytes:
        return canonical_json(
            {
                "v": VERSION,
                "ctx": _h(ctx.encode()),
                "dealer": self.dealer,
                "key": _h(self.public_key),
                "commit": {
                    "self": _h(self.self_commitment),
                    "pairs": {m: _h(c) for m, c in self.pair_commitments.items()},
                },
                "shares": {
                    h: {"commit": [_h(c) for c in s.commitments], "box": _h(s.box)}
                    for h, s in self.holders.items()
                },
            }
        )


def parse_bundle(raw: bytes, ctx: RoundContext, dealer: str, neighbours: tuple[str, ...]) -> ShareBundle:
    """A bundle from `dealer` with exactly one entry per neighbour, or ShareError (party=dealer)."""
    doc = _load(raw, "share bundle", dealer)
    _header(doc, ctx, "dealer", dealer, "share bundle")
    what = f"share bundle of {dealer}"
    commit, shares = doc.get("commit"), doc.get("shares")
    if (
        not isinstance(commit, dict)
        or not isinstance(commit.get("pairs"), dict)
        or not isinstance(shares, dict)
    ):
        raise ShareError(f"{what} lacks its commitments or shares", party=dealer)
    if sorted(commit["pairs"]) != sorted(neighbours) or sorted(shares) != sorted(neighbours):
        raise ShareError(
            f"{what} does not cover exactly the dealer's neighbours {list(neighbours)}", party=dealer
        )
    holders = {}
    for h in neighbours:
        entry = shares[h]
        if not isinstance(entry, dict) or not isinstance(entry.get("commit"), list):
            raise ShareError(f"{what}: the entry for {h} is malformed", party=dealer)
        if len(entry["commit"]) != 1 + len(neighbours):
            raise ShareError(
                f"{what}: {h} gets {len(entry['commit'])} shares, expected {1 + len(neighbours)}",
                party=dealer,
            )
        holders[h] = HolderShares(
            commitments=tuple(
                _hex(c, HASH_BYTES, f"a share commitment for {h}", dealer) for c in entry["commit"]
            ),
            box=_hex(entry.get("box"), None, f"the share box for {h}", dealer),
        )
    return ShareBundle(
        dealer=dealer,
        public_key=_hex(doc.get("key"), PUBLIC_KEY_BYTES, "public key", dealer),
        self_commitment=_hex(commit.get("self"), HASH_BYTES, "self-mask commitment", dealer),
        pair_commitments={
            m: _hex(commit["pairs"][m], HASH_BYTES, "pair commitment", dealer) for m in neighbours
        },
        holders=holders,
    )


# -- reveal ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reveal:
    revealer: str
    self_shares: Mapping[str, bytes]  # dealer -> share of b_dealer
    pair_shares: Mapping[str, Mapping[str, bytes]]  # dealer -> other -> share of s_dealer,other
    seeds: Mapping[str, bytes]  # dropped neighbour -> s_revealer,neighbour
    faults: Mapping[str, str] = field(default_factory=dict)  # dealer -> why its shares were unusable

    def encode(self, ctx: RoundContext) -> bytes:
        return canonical_json(
            {
                "v": VERSION,
                "ctx": _h(ctx.encode()),
                "revealer": self.revealer,
                "self": {d: _h(s) for d, s in self.self_shares.items()},
                "pairs": {d: {m: _h(s) for m, s in ms.items()} for d, ms in self.pair_shares.items()},
                "seeds": {j: _h(s) for j, s in self.seeds.items()},
                "faults": dict(self.faults),
            }
        )


def parse_reveal(raw: bytes, ctx: RoundContext, revealer: str, share_bytes: int) -> Reveal:
    """A reveal from `revealer`, well-formed (which entries it may contain is checked on use)."""
    doc = _load(raw, "reveal", revealer)
    _header(doc, ctx, "revealer", revealer, "reveal")
    sel, pairs, seeds, faults = doc.get("self"), doc.get("pairs"), doc.get("seeds"), doc.get("faults")
    if not (isinstance(sel, dict) and isinstance(pairs, dict) and isinstance(seeds, dict)):
        raise ShareError(f"reveal of {revealer} lacks its self, pairs or seeds section", party=revealer)
    if not isinstance(faults, dict) or not all(isinstance(v, str) for v in faults.values()):
        raise ShareError(f"reveal of {revealer} lacks its faults section", party=revealer)
    if not all(isinstance(ms, dict) for ms in pairs.values()):
        raise ShareError(f"reveal of {revealer}: a pairs entry is not a map", party=revealer)
    return Reveal(
        revealer=revealer,
        self_shares={d: _hex(s, share_bytes, f"share of {d}'s self-mask", revealer) for d, s in sel.items()},
        pair_shares={
            d: {m: _hex(s, share_bytes, f"share of the {d}-{m} seed", revealer) for m, s in ms.items()}
            for d, ms in pairs.items()
        },
        seeds={j: _hex(s, SEED_BYTES, f"seed shared with {j}", revealer) for j, s in seeds.items()},
        faults={str(d): str(why)[:300] for d, why in faults.items()},
    )
