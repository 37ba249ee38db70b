# pragma version ~=0.4.3
"""
@title One coordinate of a chunk-local rule, with Python's rounding
@custom:contract-name coordinate_math
@license MIT
@notice The arithmetic a fraud proof recomputes for one coordinate, exactly as
        aggregation/chunk_witness.py (and through it the full rules) computes it:
        blob values are int64 little-endian; means round to nearest with halves up
        (stats.div_half_up); a clipped value is round(v * bound / norm) with
        norm = isqrt(squared norm); the trimmed mean (and the median, k = (n-1) // 2)
        sums the kept values from two order-statistic witnesses and counts.
        Everything is int256, so no sum of 64-bit values weighted by 64-bit weights
        can overflow, and a result outside int64 is simply a value no blob can hold.
@dev    A library module: internal pure functions only, no state, no reverts (the
        caller checks witnesses and proofs and owns the revert reasons).
"""

INT64_HALF: constant(uint256) = 2**63
UINT64: constant(uint256) = 2**64
#: 0x00FF00FF00FF00FF and 0x0000FFFF0000FFFF (hex literals would be bytes8): byte-swap masks
BYTES_EVEN: constant(uint256) = 71777214294589695
PAIRS_EVEN: constant(uint256) = 281470681808895


@internal
@pure
def _uint64_le(data: Bytes[4096], at: uint256) -> uint256:
    """
    @notice The 8 bytes of `data` at `at` read as a little-endian unsigned integer
            (a blob's header length, or the bits of an int64).
    @dev    The caller has checked at + 8 <= len(data).
    """
    x: uint256 = convert(slice(data, at, 8), uint256)
    x = ((x & BYTES_EVEN) << 8) | ((x >> 8) & BYTES_EVEN)
    x = ((x & PAIRS_EVEN) << 16) | ((x >> 16) & PAIRS_EVEN)
    return ((x << 32) | (x >> 32)) & (UINT64 - 1)


@internal
@pure
def _int64_le(data: Bytes[4096], at: uint256) -> int256:
    """
    @notice The 8 bytes of `data` at `at` read as a little-endian two's-complement int64.
    """
    x: uint256 = self._uint64_le(data, at)
    if x >= INT64_HALF:
        return convert(x, int256) - convert(UINT64, int256)
    return convert(x, int256)


@internal
@pure
def _div_half_up(acc: int256, total: int256) -> int256:
    """
    @notice acc / total rounded to nearest, halves up, for total > 0: stats.div_half_up.
    @dev    EVM division truncates towards zero; Python's floors, so a negative inexact
            quotient is moved down one first.
    """
    q: int256 = acc // total
    if acc < 0 and q * total != acc:
        q -= 1
    r: int256 = acc - q * total
    if r >= total - r:
        q += 1
    return q


@internal
@pure
def _clip(v: int256, squared_norm: uint256, bound: uint256) -> int256:
    """
    @notice One coordinate of an update clipped to `bound` given the whole update's
            squared norm: clipped.scale_to_bound, norm = isqrt(squared norm).
    """
    norm: uint256 = isqrt(squared_norm)
    if norm <= bound:
        return v
    return self._div_half_up(v * convert(bound, int256), convert(norm, int256))


@internal
@pure
def _witnesses_hold(
    n: uint256,
    k: uint256,
    low: int256,
    high: int256,
    below_low: uint256,
    upto_low: uint256,
    below_high: uint256,
    upto_high: uint256,
) -> bool:
    """
    @notice Whether `low` is s[k] and `high` is s[n-1-k] of the sorted values, from the
            counts of values below and up to each: w is s[p] iff count(< w) <= p < count(<= w).
    """
    return (
        low <= high
        and below_low <= k
        and k < upto_low
        and below_high <= n - 1 - k
        and n - 1 - k < upto_high
    )


@internal
@pure
def _kept_mean(
    n: uint256,
    k: uint256,
    low: int256,
    high: int256,
    upto_low: uint256,
    below_high: uint256,
    between_sum: int256,
) -> int256:
    """
    @notice The mean of s[k..n-1-k], halves up, given verified witnesses: the values
            strictly between them, plus the copies of each witness inside the kept range.
    """
    kept: uint256 = n - 2 * k
    total: int256 = 0
    if low == high:
        total = convert(kept, int256) * low
    else:
        total = between_sum + convert(upto_low - k, int256) * low + convert(n - k - below_high, int256) * high
    return self._div_half_up(total, convert(kept, int256))
