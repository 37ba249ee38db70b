"""SecAgg+ over a chain: mask, deal shares, reveal, recover, unmask — pure functions of their inputs.

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
    4. unmask    validators sum the committers' y, rebuild the seeds from ≥ t verified shares,
                 subtract, and get Σ_{i∈C} w_i·x_i exactly; all of them get the same bytes

Because C is read from the chain, not announced by a server, every honest trainer reveals
against the same C, which is what Bonawitz's consistency round exists to ensure. Everything
any party needs is on chain or in the content-addressed store, so the audit can replay step 4.

Recovery either rebuilds every seed it needs or raises RecoveryFailed before subtracting
anything: a round with too many missing shares fails, it is never partially unmasked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from fedledger.errors import KeyMismatch, PrivacyError, RecoveryFailed, ShareError
from fedledger.privacy import keys, shamir
from fedledger.privacy.bundle import (
    HolderShares,
    Reveal,
    ShareBundle,
    box_associated_data,
    pair_label,
    parse_bundle,
    parse_reveal,
    secret_commitment,
    self_label,
    share_commitment,
)
from fedledger.privacy.graph import effective_degree, graph_seed, neighbour_graph, threshold_for
from fedledger.privacy.masking import Prg, mask, pair_sign, remove_masks

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


def _directory_key(directory: Mapping[str, bytes], party: str) -> bytes:
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
        if keys.public_key_bytes(key) != _directory_key(directory, me):
            raise KeyMismatch(f"{me}: this node's X25519 key differs from the one registered on chain")
        self.setup, self.me, self.key, self.directory = setup, me, key, directory
        self.neighbours = setup.neighbours[me]
        ctx = setup.ctx
        shared = {j: keys.agree(key, _directory_key(directory, j), j) for j in self.neighbours}
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
        if bundle.public_key != _directory_key(self.directory, dealer):
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


@dataclass
class Recovery:
    """The seeds that turn the committers' masked sum into the plain sum, and the faults seen."""

    self_seeds: dict[str, bytes]  # committer -> b
    pair_seeds: dict[tuple[str, str], bytes]  # (committer, dropped neighbour) -> s
    faults: dict[str, str] = field(default_factory=dict)  # party -> reason

    def pair_terms(self) -> list[tuple[bytes, int]]:
        """(s_ij, sign with which committer i added it) for every leftover pairwise mask."""
        return [(s, pair_sign(i, j)) for (i, j), s in sorted(self.pair_seeds.items())]


def recover(
    setup: RoundSetup,
    directory: Mapping[str, bytes],
    bundles: Mapping[str, bytes | None],
    committers: Collection[str],
    reveals: Mapping[str, bytes | None],
) -> Recovery:
    """Every seed the committers' sum needs, from verified shares, or RecoveryFailed.

    bundles: share bundle per participant (None/absent: not available). reveals: per
    committer (None/absent: withheld, recorded as a fault). Shares are checked one by one
    against their dealer's published commitments and rebuilt seeds against the seed
    commitments, so a lying revealer is named and ignored rather than corrupting the sum.
    """
    return _Recoverer(setup, directory, bundles, set(committers), reveals).run()


class _Recoverer:
    """One recovery: parse what was published, then rebuild each needed seed."""

    def __init__(
        self,
        setup: RoundSetup,
        directory: Mapping[str, bytes],
        bundles: Mapping[str, bytes | None],
        committed: set[str],
        reveals: Mapping[str, bytes | None],
    ) -> None:
        for c in committed:
            setup.check(c)
        if not committed:
            raise RecoveryFailed("no committers: nothing to unmask")
        self.setup, self.committed = setup, committed
        self.faults: dict[str, str] = {}
        ctx = setup.ctx
        self.bundles: dict[str, ShareBundle] = {}
        for p in setup.participants:
            raw = bundles.get(p)
            if raw is None:
                if p in committed:
                    self.faults[p] = "committed without an available share bundle"
                continue
            try:
                b = parse_bundle(raw, ctx, p, setup.neighbours[p])
                if b.public_key != _directory_key(directory, p):
                    raise KeyMismatch(f"share bundle of {p} carries a key that is not its on-chain key")
                self.bundles[p] = b
            except (ShareError, KeyMismatch) as exc:
                self.faults[p] = str(exc)
        self.reveals: dict[str, Reveal] = {}
        for h in sorted(committed, key=str.lower):
            raw = reveals.get(h)
            if raw is None:
                self.faults.setdefault(h, "committed but withheld its reveal")
                continue
            try:
                self.reveals[h] = parse_reveal(raw, ctx, h, shamir.SHARE_BYTES)
            except ShareError as exc:
                self.faults[h] = str(exc)
        _refuse_forbidden(setup, committed, self.reveals, self.faults)
        for h, rv in sorted(self.reveals.items()):  # holders' public complaints about dealers
            for dealer, why in sorted(rv.faults.items()):
                if dealer in setup.neighbours.get(h, ()):
                    self.faults.setdefault(dealer, f"{h} could not use its shares: {why}")

    def shares_of(self, dealer: str, index: int) -> list[tuple[int, int]]:
        """Verified revealed shares (x, y) of dealer's secret `index` (0: b, 1 + i: s with N[i])."""
        bundle = self.bundles.get(dealer)
        if bundle is None:
            return []
        nbrs = self.setup.neighbours[dealer]
        other = nbrs[index - 1] if index else ""
        allowed = (
            dealer in self.committed if not index else (dealer in self.committed) != (other in self.committed)
        )
        if not allowed:
            return []
        points = []
        for h in nbrs:
            rv = self.reveals.get(h)
            raw = (
                None
                if rv is None
                else (rv.self_shares.get(dealer) if not index else rv.pair_shares.get(dealer, {}).get(other))
            )
            if raw is None:
                continue
            if (
                share_commitment(self.setup.ctx, dealer, h, index, raw)
                != bundle.holders[h].commitments[index]
            ):
                self.faults.setdefault(
                    h, f"revealed a share of {dealer}'s secret {index} that differs from its commitment"
                )
                continue
            points.append((self.setup.x(h), shamir.decode_share(raw, party=h)))
        return points

    def rebuild(self, dealer: str, index: int, commitment: bytes, label: bytes) -> tuple[bytes | None, int]:
        """The secret from the first t verified shares if it matches its commitment; and the share count."""
        points = self.shares_of(dealer, index)
        if len(points) < self.setup.threshold:
            return None, len(points)
        secret = shamir.combine(points[: self.setup.threshold])
        if secret_commitment(self.setup.ctx, label, secret) != commitment:
            self.faults.setdefault(
                dealer, f"dealt shares of secret {index} that do not rebuild its committed seed"
            )
            return None, len(points)
        return secret, len(points)

    def pair(self, c: str, j: str) -> bytes | None:
        """s_cj from c's own reveal, else c's dealt shares, else j's (the first that verifies)."""
        label = pair_label(c, j)
        commitment = self.bundles[c].pair_commitments.get(j) if c in self.bundles else None
        if commitment is None and j in self.bundles:
            commitment = self.bundles[j].pair_commitments.get(c)
        if commitment is None:
            return None
        direct = self.reveals[c].seeds.get(j) if c in self.reveals else None
        if direct is not None:
            if secret_commitment(self.setup.ctx, label, direct) == commitment:
                return direct
            self.faults.setdefault(c, f"revealed a seed with {j} that differs from its commitment")
        for dealer, other in ((c, j), (j, c)):
            if dealer in self.bundles and other in self.setup.neighbours[dealer]:
                index = 1 + self.setup.neighbours[dealer].index(other)
                got, _ = self.rebuild(dealer, index, commitment, label)
                if got is not None:
                    return got
        return None

    def run(self) -> Recovery:
        t, order = self.setup.threshold, sorted(self.committed, key=str.lower)
        missing: list[str] = []
        self_seeds: dict[str, bytes] = {}
        for c in order:
            if c not in self.bundles:
                missing.append(f"{c}'s self-mask (no valid share bundle)")
                continue
            got, count = self.rebuild(c, 0, self.bundles[c].self_commitment, self_label(c))
            if got is None:
                missing.append(f"{c}'s self-mask ({count} valid shares, need {t})")
            else:
                self_seeds[c] = got
        pair_seeds: dict[tuple[str, str], bytes] = {}
        for c in order:
            for j in self.setup.neighbours[c]:
                if j in self.committed:
                    continue
                seed = self.pair(c, j)
                if seed is None:
                    missing.append(f"the {c}-{j} pair mask")
                else:
                    pair_seeds[(c, j)] = seed
        if missing:
            shown = "; ".join(missing[:4]) + (f"; and {len(missing) - 4} more" if len(missing) > 4 else "")
            raise RecoveryFailed(f"round cannot be unmasked (nothing was): too few shares for {shown}")
        return Recovery(self_seeds, pair_seeds, dict(self.faults))


def _refuse_forbidden(
    setup: RoundSetup, committed: set[str], opened: dict[str, Reveal], faults: dict[str, str]
) -> None:
    """Name a revealer that opened a share honest trainers never open (its extra shares go unused)."""
    for h, rv in opened.items():
        bad = [
            f"{d}'s self-mask" for d in rv.self_shares if d not in committed or d not in setup.neighbours[h]
        ]
        bad += [
            f"the {d}-{m} seed"
            for d, ms in rv.pair_shares.items()
            for m in ms
            if (d in committed) == (m in committed) or d not in setup.neighbours[h]
        ]
        bad += [f"its seed with {j}" for j in rv.seeds if j in committed or j not in setup.neighbours[h]]
        if bad:
            faults.setdefault(h, f"revealed what it must not: {', '.join(sorted(bad)[:4])}")


def unmask(total: np.ndarray, recovery: Recovery, prg: Prg | None = None) -> np.ndarray:
    """Σ_{i∈C} w_i·x_i as (size,) int64 from the committers' masked sum (mod 2^64)."""
    return remove_masks(
        total, [recovery.self_seeds[c] for c in sorted(recovery.self_seeds)], recovery.pair_terms(), prg
    )


def unmask_round(
    setup: RoundSetup,
    directory: Mapping[str, bytes],
    masked: Mapping[str, np.ndarray],
    bundles: Mapping[str, bytes | None],
    reveals: Mapping[str, bytes | None],
) -> tuple[np.ndarray, Recovery]:
    """The whole validator job for in-memory inputs: recover first (may raise), then sum and unmask."""
    committers: Sequence[str] = sorted(masked, key=str.lower)
    recovery = recover(setup, directory, bundles, committers, reveals)
    size = next(iter(masked.values())).size
    acc = np.zeros(size, dtype=np.uint64)
    for c in committers:
        np.add(acc, masked[c], out=acc)
    return unmask(acc, recovery, Prg(size)), recovery
