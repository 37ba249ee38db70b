"""Secure aggregation (SecAgg+ over the chain): exactness, dropout recovery, privacy, bad input.

Every test runs the real protocol end to end on small vectors: trainers mask and deal, the
chain's committers reveal, validators recover and unmask. Keys are derived from fixed seeds,
so every run (and every statistical test) sees the same bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import chisquare

from fedledger.aggregation.fedavg import fedavg
from fedledger.aggregation.stats import div_half_up
from fedledger.errors import KeyMismatch, PrivacyError, RecoveryFailed, ShareError
from fedledger.privacy import keys, shamir
from fedledger.privacy.bundle import canonical_json
from fedledger.privacy.graph import auto_degree, effective_degree, graph_seed, neighbour_graph, threshold_for
from fedledger.privacy.masking import Prg, flatten, masked_sum, unflatten, weighted
from fedledger.privacy.recovery import recover, unmask, unmask_round
from fedledger.privacy.secagg import RoundSetup, SecAggTrainer

CTX = keys.RoundContext(job=7, round=3, domain=bytes.fromhex("11" * 20))
GLOBAL = bytes(range(32))
SHAPES = {"conv.weight": (4, 3), "fc.bias": (5,), "scale": ()}
SIZE = 4 * 3 + 5 + 1


def party(i: int) -> str:
    return "0x" + f"{i + 1:02x}" * 20


class Round:
    """n trainers with fixed keys, random int64 deltas and weights, and their uploads."""

    def __init__(self, n: int, *, degree: int = 0, fraction: float = 0.5, seed: int = 0) -> None:
        self.ids = [party(i) for i in range(n)]
        self.keys = {p: keys.private_key_from_seed(bytes([i + 1]) * 32) for i, p in enumerate(self.ids)}
        self.directory = {p: keys.public_key_bytes(k) for p, k in self.keys.items()}
        self.setup = RoundSetup.create(CTX, self.ids, GLOBAL, degree=degree, threshold_fraction=fraction)
        rng = np.random.default_rng(seed)
        self.deltas = {
            p: {
                name: rng.integers(-(2**20), 2**20, size=shape, dtype=np.int64)
                for name, shape in SHAPES.items()
            }
            for p in self.ids
        }
        self.weights = {p: int(rng.integers(1, 500)) for p in self.ids}
        self.trainers = {p: SecAggTrainer(self.setup, p, self.keys[p], self.directory) for p in self.ids}
        self.masked = {
            p: self.trainers[p].mask(weighted(flatten(self.deltas[p], list(SHAPES)), self.weights[p], n))
            for p in self.ids
        }
        self.bundles: dict[str, bytes | None] = {p: self.trainers[p].deal() for p in self.ids}

    def reveals(self, committers: list[str], withheld: tuple[str, ...] = ()) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {}
        for c in committers:
            if c not in withheld:
                out[c], _ = self.trainers[c].reveal(self.bundles, committers)
        return out

    def plain_sum(self, committers: list[str]) -> np.ndarray:
        return sum(
            (flatten(self.deltas[c], list(SHAPES)) * self.weights[c] for c in committers),
            start=np.zeros(SIZE, dtype=np.int64),
        )

    def unmask(self, committers: list[str], withheld: tuple[str, ...] = ()) -> np.ndarray:
        total, _ = unmask_round(
            self.setup,
            self.directory,
            {c: self.masked[c] for c in committers},
            self.bundles,
            self.reveals(committers, withheld),
        )
        return total


# -- exactness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "degree"), [(6, 0), (12, 4), (20, 6)])
def test_secure_sum_gives_bit_identical_fedavg(n: int, degree: int) -> None:
    r = Round(n, degree=degree)
    total = r.unmask(r.ids)
    assert np.array_equal(total, r.plain_sum(r.ids))
    weight = sum(r.weights.values())
    secure = unflatten(div_half_up(total, weight), SHAPES)
    plain = fedavg([r.deltas[p] for p in r.ids], [r.weights[p] for p in r.ids])
    for name in SHAPES:
        assert secure[name].dtype == plain[name].dtype == np.int64
        assert secure[name].tobytes() == plain[name].tobytes()


def test_dropouts_up_to_the_threshold_recover_the_exact_sum() -> None:
    r = Round(12, degree=6)  # t = 4 of 6: every trainer survives 2 missing neighbours
    assert r.setup.threshold == 4
    k, t = 6, r.setup.threshold
    lost: list[str] = []  # greedily: as many missing trainers as leave everyone >= t neighbours
    for p in r.ids:
        trial = [*lost, p]
        if all(sum(q in trial for q in r.setup.neighbours[x]) <= k - t for x in r.ids):
            lost = trial
    assert len(lost) >= 3
    dropped = set(lost[:-1])  # never committed
    committers = [p for p in r.ids if p not in dropped]
    withheld = (lost[-1],)  # committed, then went silent before revealing
    total = r.unmask(committers, withheld)
    assert np.array_equal(total, r.plain_sum(committers))


def test_dropped_trainers_bundles_may_be_missing_too() -> None:
    r = Round(10, degree=6)
    dropped = r.ids[4]
    r.bundles[dropped] = None  # it dropped before uploading anything
    committers = [p for p in r.ids if p != dropped]
    assert np.array_equal(r.unmask(committers), r.plain_sum(committers))


def test_too_many_missing_fails_safe_and_names_what_is_missing() -> None:
    r = Round(12, degree=6)
    victim = r.ids[0]
    silent = r.setup.neighbours[victim][:3]  # 3 of its 6 neighbours withhold: 3 < t = 4 remain
    with pytest.raises(
        RecoveryFailed, match=rf"nothing was.*{victim}'s self-mask \(3 valid shares, need 4\)"
    ):
        r.unmask(r.ids, withheld=tuple(silent))


def test_a_withheld_reveal_is_a_fault_and_the_round_recovers() -> None:
    r = Round(8)
    silent = r.ids[2]
    recovery = recover(r.setup, r.directory, r.bundles, r.ids, r.reveals(r.ids, withheld=(silent,)))
    assert recovery.faults == {silent: "committed but withheld its reveal"}


# -- privacy -----------------------------------------------------------------------------------


def test_masked_update_is_statistically_uniform() -> None:
    r = Round(8)
    y = r.masked[r.ids[0]]
    # a sparse, small update: its plain bytes are far from uniform; the masked bytes are not
    x = np.zeros(4096, dtype=np.int64)
    x[::7] = 3
    trainer = r.trainers[r.ids[0]]
    y = trainer.mask(weighted(x, 11, 8), Prg(x.size))
    masked_counts = np.bincount(np.frombuffer(y.tobytes(), dtype=np.uint8), minlength=256)
    plain_counts = np.bincount(np.frombuffer(weighted(x, 11, 8).tobytes(), dtype=np.uint8), minlength=256)
    assert chisquare(masked_counts).pvalue > 0.001
    assert chisquare(plain_counts).pvalue < 1e-100
    bits = np.unpackbits(np.frombuffer(y.tobytes(), dtype=np.uint8))
    assert abs(bits.mean() - 0.5) < 4 * 0.5 / np.sqrt(bits.size)  # within 4 sigma


def test_a_coalition_below_the_threshold_cannot_unmask_an_honest_update() -> None:
    r = Round(12, degree=6)
    honest = r.ids[5]
    t = r.setup.threshold
    coalition = r.setup.neighbours[honest][: t - 1]
    # every coalition member opens what the honest trainer dealt it
    points = [
        (r.setup.x(h), int.from_bytes(r.trainers[h].open_bundle(honest, r.bundles[honest])[0], "big"))
        for h in coalition
    ]
    guess = shamir.combine(points)
    true_seed = r.trainers[honest].self_seed
    assert guess != true_seed
    # even given every pairwise seed of the honest trainer, its update stays hidden
    prg = Prg(SIZE)
    attempt = r.masked[honest].copy()
    prg.add(attempt, guess, -1)
    for j, s in r.trainers[honest].pair_seeds.items():
        prg.add(attempt, s, -1 if honest.lower() < j.lower() else 1)
    plain = weighted(flatten(r.deltas[honest], list(SHAPES)), r.weights[honest], 12)
    assert not np.array_equal(attempt, plain)
    # while t shares do recover it (the check above is not vacuous)
    extra = r.setup.neighbours[honest][t - 1]
    points.append(
        (r.setup.x(extra), int.from_bytes(r.trainers[extra].open_bundle(honest, r.bundles[honest])[0], "big"))
    )
    assert shamir.combine(points) == true_seed


def test_reveals_never_open_forbidden_secrets() -> None:
    r = Round(10, degree=4)
    dropped = r.ids[3]
    committers = [p for p in r.ids if p != dropped]
    for c in committers:
        doc = json.loads(r.trainers[c].reveal(r.bundles, committers)[0])
        assert dropped not in doc["self"]  # never the self-mask of a dropped trainer
        for d, others in doc["pairs"].items():
            for m in others:
                assert (d in committers) != (m in committers)  # never a seed between two committers
        assert set(doc["seeds"]) <= {dropped}


def test_seeds_are_specific_to_their_round() -> None:
    a, b = (keys.private_key_from_seed(bytes([i]) * 32) for i in (1, 2))
    shared = keys.agree(a, keys.public_key_bytes(b), "b")
    r3 = keys.pairwise_seed(shared, CTX, "a", "b")
    r4 = keys.pairwise_seed(shared, keys.RoundContext(CTX.job, CTX.round + 1, CTX.domain), "a", "b")
    assert r3 == keys.pairwise_seed(keys.agree(b, keys.public_key_bytes(a), "a"), CTX, "b", "a")  # symmetric
    assert r3 != r4
    assert keys.self_seed(a, CTX) != keys.self_seed(a, keys.RoundContext(CTX.job + 1, CTX.round, CTX.domain))


# -- bad input ---------------------------------------------------------------------------------


def _edit(raw: bytes | None, change) -> bytes:  # type: ignore[no-untyped-def]
    assert raw is not None
    doc = json.loads(raw)
    change(doc)
    return canonical_json(doc)


def test_a_missing_bundle_is_a_named_fault() -> None:
    r = Round(8)
    dealer, holder = r.ids[0], r.ids[1]
    with pytest.raises(ShareError, match=f"no share bundle from {dealer}") as info:
        r.trainers[holder].open_bundle(dealer, None)
    assert info.value.party == dealer
    # a committer whose bundle nobody can read cannot have its self-mask removed: the round fails
    r.bundles[dealer] = None
    with pytest.raises(RecoveryFailed, match=f"{dealer}'s self-mask \\(no valid share bundle\\)"):
        r.unmask(r.ids)


def test_a_malformed_bundle_is_rejected() -> None:
    r = Round(6)
    dealer, holder = r.ids[0], r.ids[1]
    for raw, why in [
        (b"not json", "not JSON"),
        (b'{"v": 1}', "not canonical JSON"),
        (_edit(r.bundles[dealer], lambda d: d.update(v=2)), "version 2"),
        (_edit(r.bundles[dealer], lambda d: d["shares"].pop(holder)), "exactly the dealer's neighbours"),
        (_edit(r.bundles[dealer], lambda d: d["shares"][holder].update(box="zz")), "not 0x-hex"),
    ]:
        with pytest.raises(ShareError, match=why):
            r.trainers[holder].open_bundle(dealer, raw)
    other_round = SecAggTrainer(
        RoundSetup.create(keys.RoundContext(CTX.job, CTX.round + 1, CTX.domain), r.ids, GLOBAL),
        dealer,
        r.keys[dealer],
        r.directory,
    ).deal()
    with pytest.raises(ShareError, match="another job or round"):
        r.trainers[holder].open_bundle(dealer, other_round)


def test_a_key_that_differs_from_the_directory_is_rejected() -> None:
    r = Round(6)
    dealer, holder = r.ids[0], r.ids[1]
    rogue = keys.public_key_bytes(keys.private_key_from_seed(b"\x99" * 32))
    forged = _edit(r.bundles[dealer], lambda d: d.update(key="0x" + rogue.hex()))
    with pytest.raises(
        KeyMismatch, match=f"share bundle of {dealer} carries a key that is not its on-chain key"
    ):
        r.trainers[holder].open_bundle(dealer, forged)
    with pytest.raises(KeyMismatch, match="differs from the one registered on chain"):
        SecAggTrainer(r.setup, dealer, keys.private_key_from_seed(b"\x99" * 32), r.directory)
    with pytest.raises(KeyMismatch, match="has no key in the on-chain directory"):
        SecAggTrainer(r.setup, dealer, r.keys[dealer], {dealer: r.directory[dealer]})
    with pytest.raises(KeyMismatch, match="low-order point"):
        keys.agree(r.keys[dealer], bytes(32), "zero")
    with pytest.raises(KeyMismatch, match="not 32 bytes"):
        keys.agree(r.keys[dealer], b"\x01" * 31, "short")


def test_shares_sealed_for_another_neighbour_do_not_decrypt() -> None:
    r = Round(6)
    dealer, holder, other = r.ids[0], r.ids[1], r.ids[2]
    swapped = _edit(r.bundles[dealer], lambda d: d["shares"][holder].update(box=d["shares"][other]["box"]))
    with pytest.raises(
        ShareError, match=f"from {dealer} to {holder} do not decrypt: sealed for another neighbour"
    ):
        r.trainers[holder].open_bundle(dealer, swapped)
    # the holder records it as the dealer's fault and still reveals the rest
    r.bundles[dealer] = swapped
    _, faults = r.trainers[holder].reveal(r.bundles, r.ids)
    assert set(faults) == {dealer}
    # its complaint is public: the validators (and the audit) record it against the dealer, and
    # the round still recovers from the dealer's other neighbours
    total, recovery = unmask_round(r.setup, r.directory, r.masked, r.bundles, r.reveals(r.ids))
    assert np.array_equal(total, r.plain_sum(r.ids))
    assert recovery.faults[dealer].startswith(f"{holder} could not use its shares: shares from {dealer}")


def test_shares_that_differ_from_their_commitment_are_the_dealers_fault() -> None:
    r = Round(6)
    dealer, holder = r.ids[0], r.ids[1]
    bad = _edit(r.bundles[dealer], lambda d: d["shares"][holder]["commit"].__setitem__(0, "0x" + "00" * 32))
    with pytest.raises(ShareError, match=f"share 0 from {dealer} differs from its published commitment"):
        r.trainers[holder].open_bundle(dealer, bad)


def test_a_tampered_or_forbidden_reveal_is_named_and_ignored() -> None:
    r = Round(10, degree=6)
    liar = r.ids[4]
    reveals = r.reveals(r.ids)
    dealer = next(iter(json.loads(reveals[liar])["self"]))  # type: ignore[arg-type]
    reveals[liar] = _edit(
        reveals[liar], lambda d: d["self"].__setitem__(dealer, "0x" + "01" * shamir.SHARE_BYTES)
    )
    total, recovery = unmask_round(r.setup, r.directory, r.masked, r.bundles, reveals)
    assert np.array_equal(total, r.plain_sum(r.ids))
    assert "differs from its commitment" in recovery.faults[liar]
    # opening a seed between two committers is named too, and changes nothing
    snoop = r.ids[5]
    partner = r.setup.neighbours[snoop][0]
    reveals = r.reveals(r.ids)
    reveals[snoop] = _edit(reveals[snoop], lambda d: d["seeds"].__setitem__(partner, "0x" + "00" * 32))
    total, recovery = unmask_round(r.setup, r.directory, r.masked, r.bundles, reveals)
    assert np.array_equal(total, r.plain_sum(r.ids))
    assert "revealed what it must not" in recovery.faults[snoop]
    reveals[snoop] = b"{}"  # malformed: named, and t = 4 of 6 shares still remain for its dealers
    total, recovery = unmask_round(r.setup, r.directory, r.masked, r.bundles, reveals)
    assert np.array_equal(total, r.plain_sum(r.ids))
    assert recovery.faults[snoop] == f"reveal of {snoop} has version None, expected 1"


def test_only_committers_reveal() -> None:
    r = Round(6)
    committers = r.ids[1:]
    with pytest.raises(PrivacyError, match="did not commit this round"):
        r.trainers[r.ids[0]].reveal(r.bundles, committers)


def test_an_update_too_large_for_the_ring_is_refused() -> None:
    with pytest.raises(PrivacyError, match="too large for the 64-bit ring"):
        weighted(np.array([2**55], dtype=np.int64), 1000, 100)
    with pytest.raises(PrivacyError, match="int64"):
        weighted(np.array([1.0]), 1, 2)


# -- building blocks ---------------------------------------------------------------------------


def test_shamir_any_t_shares_recover_and_fewer_do_not() -> None:
    secret = bytes(range(32))
    xs = list(range(1, 8))
    ys = shamir.split(secret, xs, 4, shamir.random_coefficients(b"k" * 32, 3))
    pts = list(zip(xs, ys, strict=True))
    assert shamir.combine(pts[:4]) == shamir.combine(pts[3:]) == shamir.combine(pts[::2]) == secret
    assert shamir.combine(pts[:3]) != secret
    with pytest.raises(ShareError, match="66 bytes"):
        shamir.decode_share(b"\x00" * 65)
    with pytest.raises(ShareError, match="outside the field"):
        shamir.decode_share(b"\xff" * 66)


def test_neighbour_graph_is_regular_symmetric_and_seeded() -> None:
    ids = [party(i) for i in range(30)]
    seed = graph_seed(CTX, GLOBAL)
    g = neighbour_graph(ids, 8, seed)
    assert all(len(ns) == 8 and p not in ns for p, ns in g.items())
    assert all(p in g[q] for p, ns in g.items() for q in ns)
    assert g == neighbour_graph(list(reversed(ids)), 8, seed)  # input order does not matter
    assert g != neighbour_graph(ids, 8, graph_seed(CTX, bytes(32)))  # the round's randomness does
    complete = neighbour_graph(ids[:5], 4, seed)
    assert all(len(ns) == 4 for ns in complete.values())
    assert auto_degree(100) == 22 and auto_degree(10) == 9
    assert effective_degree(100, 7) == 8 and effective_degree(5, 10) == 4
    assert threshold_for(22, 0.5) == 12 and threshold_for(4, 0.99) == 4


def test_masking_helpers_round_trip() -> None:
    delta = {name: np.arange(int(np.prod(s)), dtype=np.int64).reshape(s) for name, s in SHAPES.items()}
    back = unflatten(flatten(delta, list(SHAPES)), SHAPES)
    assert all(np.array_equal(back[k], delta[k]) for k in SHAPES)
    with pytest.raises(PrivacyError, match="must be"):
        masked_sum([np.zeros(3, dtype=np.int64)], 3)
    r = Round(4)
    total = masked_sum(list(r.masked.values()), SIZE)
    recovery = recover(r.setup, r.directory, r.bundles, r.ids, r.reveals(r.ids))
    assert np.array_equal(unmask(total, recovery), r.plain_sum(r.ids))
