"""Signed transactions for the in-process chain: the same EIP-155 envelopes a node accepts.

The in-process chain signs every transaction with its sender's key, as the JSON-RPC path
does, and executes the signed bytes, not loose fields. Its export carries each signed
transaction, so re-execution starts from what the sender signed: rewriting a transaction's
calldata, target or sender consistently throughout an export now also needs the sender's
key. (The simulator's organisations use the public development accounts, whose keys anyone
can derive; a deployment's own keys are what make the signatures binding.)

Legacy (type 0) transactions with EIP-155 replay protection: gas price 0 (the in-process
chain charges no fees), value 0 (no call in the protocol sends ether).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import rlp  # type: ignore[import-untyped]
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from fedledger.errors import ChainError


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction's fields, and who signed it."""

    raw: bytes
    sender: str  # checksummed, recovered from the signature
    nonce: int
    gas: int
    to: str | None  # None: a contract creation
    data: bytes
    chain_id: int

    @property
    def tx_hash(self) -> str:
        """Ethereum's transaction hash: keccak of the signed envelope."""
        return "0x" + keccak(self.raw).hex()


def sign(
    account: LocalAccount, *, nonce: int, to: str | None, data: bytes, gas: int, chain_id: int
) -> SignedTx:
    """The signed envelope of a call (or, with `to` None, a deployment); the signer is known, so
    nothing is recovered."""
    tx: dict[str, Any] = {
        "nonce": nonce,
        "gasPrice": 0,
        "gas": gas,
        "value": 0,
        "data": data,
        "chainId": chain_id,
    }
    if to is not None:
        tx["to"] = to_checksum_address(to)
    raw = bytes(account.sign_transaction(tx).raw_transaction)
    return SignedTx(
        raw=raw,
        sender=to_checksum_address(account.address),
        nonce=nonce,
        gas=gas,
        to=to_checksum_address(to) if to is not None else None,
        data=bytes(data),
        chain_id=chain_id,
    )


def decode(raw: bytes) -> SignedTx:
    """The fields of a signed legacy transaction, the sender recovered; ChainError if it is not one."""
    try:
        fields = rlp.decode(raw)
        if not isinstance(fields, list) or len(fields) != 9:
            raise ValueError(f"{len(fields) if isinstance(fields, list) else 'no'} fields, not 9")
        nonce, _price, gas, to, value, data, v = fields[:7]
        sender = Account.recover_transaction(raw)
    except Exception as exc:  # rlp and eth_account raise several unrelated types on bad bytes
        raise ChainError(f"not a signed transaction: {exc}") from None
    if _int(v) < 35:
        raise ChainError("a transaction without EIP-155 replay protection (no chain id)")
    if _int(value):
        raise ChainError("a transaction that sends ether: no call in the protocol does")
    return SignedTx(
        raw=raw,
        sender=to_checksum_address(sender),
        nonce=_int(nonce),
        gas=_int(gas),
        to=to_checksum_address(to) if to else None,
        data=bytes(data),
        chain_id=(_int(v) - 35) // 2,
    )


def _int(field: bytes) -> int:
    return int.from_bytes(field, "big")
