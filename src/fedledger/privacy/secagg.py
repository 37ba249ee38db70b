"""SecAgg+ over a chain, the trainers' side: mask, deal shares, reveal — pure functions of their inputs.

The protocol of Bell et al. 2020 (complete-graph Bonawitz et al. 2017 when k = n − 1), with
the chain in the server's place wherever the server would have to be trusted:

    1. join      every trainer registers one X25519 public key on chain (the key directory)
    2. commit    trainer i uploads y_i = w_i·x_i + PRG(b_i) + Σ ±PRG(s_ij) and its share bundle
                 (t-of-k Shamir shares of b_i and of every s_ij, each neighbour's encrypted to it),
                 and commits both; the chain closes the phase and so fixes the committers C
    3. reveal    each committer h opens, for each neighbour dealer d, exactly what C requires:
                 d ∈ C → its share of b_d; and shares of s_dm where one of d, m dropped;
                 plus its own seeds with dropped neighbours. Never b_j of a dropped j (its y_j
                 would be exposed if it turned up) and never s_ij with both in C (i's y_i would
                 lose a pairwise mask): honest trainers refuse by construction
    4. unmask    (recovery.py) validators sum the committers' y, rebuild the seeds from ≥ t verified shares,
                 subtract, and get Σ_{i∈C} w_i·x_i exactly; all of them get the same bytes

Because C is read from the chain, not announced by a server, every honest trainer reveals
against the same C, which is what Bonawitz's consistency round exists to ensure. Everything
any party needs is on chain or in the content-addressed store, so the audit can replay step 4.

Recovery either rebuilds every seed it needs or raises RecoveryFailed before subtracting
anything: a round with too many missing shares fails, it is never partially unmasked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from fedledger.errors import KeyMismatch, PrivacyError, ShareError
from fedledger.privacy import keys, shamir
from fedledger.privacy.bundle import (
    HolderShares,
    Reveal,
    ShareBundle,
    box_associated_data,
    pair_label,
    parse_bundle,
    secret_commitment,
    self_label,
    share_commitment,
)
from fedledger.privacy.graph import effective_degree, graph_seed, neighbour_graph, threshold_for
from fedledger.privacy.masking import Prg, mask, pair_sign

_NONCE = bytes(12)  # every share key encrypts exactly one box


@dataclass(frozen=True)
class RoundSetup:
    """What every party derives identically for a round: the graph and the share threshold."""

    ctx: keys.RoundContext
    participants: tuple[str, ...]  # sorted lower-case; a participant's Shamir x is its index + 1
    neighbours: Mapping[str, tuple[str, ...]]
    threshold: int

    @classmethod
    def create(
        cls,
        ctx: keys.RoundContext,
        participants: Collection[str],
        global_commitment: bytes,
        *,
        degree: int = 0,
        threshold_fraction: float = 0.5,
    ) -> RoundSetup:
        """participants: the trainers with a registered key when the round opened."""
        ids = tuple(sorted(participants, key=str.lower))
        k = effective_degree(len(ids), degree)
        graph = neighbour_graph(ids, k, graph_seed(ctx, global_commitment))
        return cls(ctx, ids, graph, threshold_for(k, threshold_fraction))

    def x(self, party: str) -> int:
        return self.participants.index(party) + 1

    def check(self, party: str) -> None:
        if party not in self.neighbours:
            raise PrivacyError(f"{party} is not a participant of this secure-aggregation round")


def directory_key(directory: Mapping[str, bytes], party: str) -> bytes:
    try:
        return directory[party]
    except KeyError:
        raise KeyMismatch(f"{party} has no key in the on-chain directory") from None


class SecAggTrainer:
    """One trainer's side of a round: its masked update, its share bundle, its reveal."""

    def __init__(
        self, setup: RoundSetup, me: str, key: X25519PrivateKey, directory: Mapping[str, bytes]
    ) -> None:
        setup.check(me)
        if keys.public_key_bytes(key) != directory_key(directory, me):
            raise KeyMismatch(f"{me}: this node's X25519 key differs from the one registered on chain")
        self.setup, self.me, self.key, self.directory = setup, me, key, directory
        self.neighbours = setup.neighbours[me]
        ctx = setup.ctx
        shared = {j: keys.agree(key, directory_key(directory, j), j) for j in self.neighbours}
        self.self_seed = keys.self_seed(key, ctx)
        self.pair_seeds = {j: keys.pairwise_seed(shared[j], ctx, me, j) for j in self.neighbours}
        self._send_keys = {j: keys.share_key(shared[j], ctx, me, j) for j in self.neighbours}
        self._receive_keys = {j: keys.share_key(shared[j], ctx, j, me) for j in self.neighbours}

    def mask(self, weighted_update: np.ndarray, prg: Prg | None = None) -> np.ndarray:
        """y = w·x + PRG(b) + Σ_j ±PRG(s_ij): (size,) uint64, uniform on its own."""
        pairs = [(self.pair_seeds[j], pair_sign(self.me, j)) for j in self.neighbours]
        return mask(weighted_update, self.self_seed, pairs, prg)

    def _secrets(self) -> list[tuple[bytes, bytes]]:
        """(label, secret) for secret 0 (b) and 1 + i (s with neighbour i)."""
        out = [(self_label(self.me), self.self_seed)]
        out += [(pair_label(self.me, j), self.pair_seeds[j]) for j in self.neighbours]
        return out

    def deal(self) -> bytes:
        """The share bundle: t-of-k shares of every secret, each holder's sealed to it alone."""
        ctx, t = self.setup.ctx, self.setup.threshold
        xs = [self.setup.x(h) for h in self.neighbours]
        secrets = self._secrets()
        table = [  # [secret][holder] -> share bytes
            [
                shamir.encode_share(y)
                for y in shamir.split(
                    s, xs, t, shamir.random_coefficients(keys.dealer_key(self.key, ctx, lbl), t - 1)
                )
            ]
            for lbl, s in secrets
        ]
        holders = {}
        for col, h in enumerate(self.neighbours):
            shares = [row[col] for row in table]
            box = ChaCha20Poly1305(self._send_keys[h]).encrypt(
                _NONCE, b"".join(shares), box_associated_data(ctx, self.me, h)
            )
            commits = tuple(share_commitment(ctx, self.me, h, i, s) for i, s in enumerate(shares))
            holders[h] = HolderShares(commits, box)
        return ShareBundle(
            dealer=self.me,
            public_key=keys.public_key_bytes(self.key),
            self_commitment=secret_commitment(ctx, secrets[0][0], secrets[0][1]),
            pair_commitments={
                j: secret_commitment(ctx, lbl, s)
                for (lbl, s), j in zip(secrets[1:], self.neighbours, strict=True)
            },
            holders=holders,
        ).encode(ctx)

    def open_bundle(self, dealer: str, raw: bytes | None) -> list[bytes]:
        """The 1 + k shares `dealer` sent this trainer, checked against its public commitments.

        Raises ShareError/KeyMismatch (party = dealer) for a missing or malformed bundle, a
        key that is not the directory's, a box sealed for another holder or altered, or
        shares that differ from what the dealer published.
        """
        ctx = self.setup.ctx
        if raw is None:
            raise ShareError(f"no share bundle from {dealer}", party=dealer)
        bundle = parse_bundle(raw, ctx, dealer, self.setup.neighbours[dealer])
        if bundle.public_key != directory_key(self.directory, dealer):
            raise KeyMismatch(f"share bundle of {dealer} carries a key that is not its on-chain key")
        mine = bundle.holders[self.me]
        try:
            plain = ChaCha20Poly1305(self._receive_keys[dealer]).decrypt(
                _NONCE, mine.box, box_associated_data(ctx, dealer, self.me)
            )
        except InvalidTag:
            raise ShareError(
                f"shares from {dealer} to {self.me} do not decrypt: sealed for another neighbour or altered",
                party=dealer,
            ) from None
        size = shamir.SHARE_BYTES
        if len(plain) != size * len(mine.commitments):
            raise ShareError(f"shares from {dealer} have the wrong length", party=dealer)
        shares = [plain[i * size : (i + 1) * size] for i in range(len(mine.commitments))]
        for i, s in enumerate(shares):
            shamir.decode_share(s, party=dealer)
            if share_commitment(ctx, dealer, self.me, i, s) != mine.commitments[i]:
                raise ShareError(
                    f"share {i} from {dealer} differs from its published commitment", party=dealer
                )
        return shares

    def reveal(
        self, bundles: Mapping[str, bytes | None], committers: Collection[str]
    ) -> tuple[bytes, dict[str, str]]:
        """This committer's reveal for the chain-fixed `committers`, and the faults it met.

        Faults (dealer -> reason) are neighbours whose shares could not be used; the round
        can still recover from the other holders. Only what C requires is revealed.
        """
        committed = set(committers)
        for c in committed:
            self.setup.check(c)
        if self.me not in committed:
            raise PrivacyError(f"{self.me} did not commit this round, so it has nothing to reveal")
        faults: dict[str, str] = {}
        self_shares: dict[str, bytes] = {}
        pair_shares: dict[str, dict[str, bytes]] = {}
        for d in self.neighbours:
            if bundles.get(d) is None and d not in committed:
                continue  # it dropped before dealing: nothing is owed, and nothing needed from it
            try:
                shares = self.open_bundle(d, bundles.get(d))
            except (ShareError, KeyMismatch) as exc:
                faults[d] = str(exc)
                continue
            d_in = d in committed
            if d_in:
                self_shares[d] = shares[0]
            opened = {
                m: shares[1 + i] for i, m in enumerate(self.setup.neighbours[d]) if (m in committed) != d_in
            }
            if opened:
                pair_shares[d] = opened
        seeds = {j: self.pair_seeds[j] for j in self.neighbours if j not in committed}
        doc = Reveal(self.me, self_shares, pair_shares, seeds, faults).encode(self.setup.ctx)
        return doc, faults
