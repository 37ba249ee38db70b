"""Recovery: the validators' side of SecAgg+ — rebuild exactly the seeds the committers' sum needs.

Inputs are all public: the round's setup, the key directory, the dealers' share bundles and
the committers' reveals (all in the store, their commitments on chain). Every share is checked
against its dealer's published commitment and every rebuilt seed against the seed's, so a
lying revealer is named and ignored instead of corrupting the sum. Either every self-mask and
every leftover pairwise mask is rebuilt, or `RecoveryFailed` is raised before anything is
subtracted: a round is never partially unmasked. `unmask` then turns the masked sum into
Σ wᵢxᵢ exactly.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedledger.errors import KeyMismatch, RecoveryFailed, ShareError
from fedledger.privacy import shamir
from fedledger.privacy.bundle import (
    Reveal,
    ShareBundle,
    pair_label,
    parse_bundle,
    parse_reveal,
    secret_commitment,
    self_label,
    share_commitment,
)
from fedledger.privacy.masking import Prg, pair_sign, remove_masks
from fedledger.privacy.secagg import RoundSetup, directory_key


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
                if b.public_key != directory_key(directory, p):
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
