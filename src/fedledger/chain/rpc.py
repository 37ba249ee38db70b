"""The JSON-RPC backend: any EVM node through web3.py, transactions signed locally.

Keys never leave the process: every transaction is signed with eth_account and
sent raw, so the node needs no unlocked accounts (a consortium chain or an L2
works as well as anvil). Nonces are tracked locally per sender, which is what
lets one process send back-to-back transactions without waiting on the
node's pending pool. anvil's automine returns a hash before the receipt
exists, so receipts are polled every few milliseconds rather than web3's
default 100 ms.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from fedledger.chain.abi import decode_revert
from fedledger.chain.base import Chain, LogEntry, Receipt
from fedledger.errors import ChainError, ChainUnavailable, TransactionReverted

GAS_MARGIN = 1.25
#: Flat headroom on top of the estimate: between estimate and inclusion another party's
#: transaction can make ours the one that closes a phase or finalises a round, which costs
#: more (a commit 40k -> 48k; a propose 67k -> 150k+). Unused gas is not charged.
GAS_HEADROOM = 200_000


def _unreachable(url: str, exc: Exception) -> ChainUnavailable:
    return ChainUnavailable(
        f"cannot reach the EVM node at {url} ({type(exc).__name__}); "
        "check the URL and that the node is running"
    )


def _revert_reason(exc: Exception) -> str:
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x") and len(data) > 10:
        return decode_revert(bytes.fromhex(data[2:]))
    message = str(getattr(exc, "message", None) or exc)
    if "execution reverted: " in message:
        return message.split("execution reverted: ", 1)[1].strip("'\" )")
    return message


class RpcChain(Chain):
    """An EVM node behind a JSON-RPC URL."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        poll_interval: float = 0.005,
        ca_bundle: str | None = None,
    ) -> None:
        """`ca_bundle`: PEM CA certificate(s) an https node's certificate must chain to."""
        self.url = url
        self.description = f"JSON-RPC node at {url}"
        self.timeout = timeout
        self.poll_interval = poll_interval
        kwargs: dict[str, Any] = {"timeout": timeout}
        if ca_bundle:
            kwargs["verify"] = ca_bundle
        self._w3 = Web3(Web3.HTTPProvider(url, request_kwargs=kwargs))
        # web3's validation middleware asks the node for its chain id before every eth_call and
        # gas estimate (a second round trip each, a third of a node's JSON-RPC time); the chain
        # id is read once below and signed into every transaction, which a node refuses if wrong
        self._w3.middleware_onion.remove("validation")
        self._nonces: dict[str, int] = {}
        # one transaction at a time from this client: a node proposes on a helper thread while
        # its main thread trains, and a commit sent meanwhile must take the next nonce after it
        self._sending = threading.Lock()
        self.requests = 0  # JSON-RPC requests sent: what a node's passes cost the chain (traces)
        self._clock_offset = 0  # seconds this client moved a development chain's clock forward
        try:
            self.chain_id = int(self._w3.eth.chain_id)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise _unreachable(url, exc) from None

    def _rpc(self, fn: Any, *args: Any) -> Any:
        self.requests += 1
        try:
            return fn(*args)
        except (requests.exceptions.RequestException, OSError) as exc:
            raise _unreachable(self.url, exc) from None

    def _next_nonce(self, address: str) -> int:
        if address not in self._nonces:
            self._nonces[address] = int(self._rpc(self._w3.eth.get_transaction_count, address, "pending"))
        nonce = self._nonces[address]
        self._nonces[address] = nonce + 1
        return nonce

    def _wait(self, tx_hash: bytes) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return dict(self._rpc(self._w3.eth.get_transaction_receipt, tx_hash))
            except TransactionNotFound:
                if time.monotonic() > deadline:
                    raise ChainError(
                        f"transaction 0x{tx_hash.hex()} not mined after {self.timeout} s"
                    ) from None
                time.sleep(self.poll_interval)

    def _receipt(self, raw: dict[str, Any], data: bytes) -> Receipt:
        block = int(raw["blockNumber"])
        ts = int(self._rpc(self._w3.eth.get_block, block)["timestamp"])
        return Receipt(
            tx_hash="0x" + bytes(raw["transactionHash"]).hex(),
            block_number=block,
            timestamp=ts,
            sender=to_checksum_address(raw["from"]),
            to=to_checksum_address(raw["to"]) if raw.get("to") else None,
            input=data,
            gas_used=int(raw["gasUsed"]),
            logs=tuple(self._log(lg) for lg in raw["logs"]),
            contract_address=to_checksum_address(raw["contractAddress"])
            if raw.get("contractAddress")
            else None,
        )

    @staticmethod
    def _log(lg: Any) -> LogEntry:
        return LogEntry(
            address=to_checksum_address(lg["address"]),
            topics=tuple(bytes(t) for t in lg["topics"]),
            data=bytes(lg["data"]),
            block_number=int(lg["blockNumber"]),
            tx_hash="0x" + bytes(lg["transactionHash"]).hex(),
            log_index=int(lg["logIndex"]),
        )

    def _transact(self, sender: LocalAccount, to: str | None, data: bytes, gas: int | None) -> Receipt:
        with self._sending:
            return self._transact_now(sender, to, data, gas)

    def _transact_now(self, sender: LocalAccount, to: str | None, data: bytes, gas: int | None) -> Receipt:
        tx: dict[str, Any] = {
            "from": sender.address,
            "data": data,
            "value": 0,
            "chainId": self.chain_id,
        }
        if to is not None:
            tx["to"] = to_checksum_address(to)
        if gas is None:
            try:
                gas = int(self._rpc(self._w3.eth.estimate_gas, tx) * GAS_MARGIN) + GAS_HEADROOM
            except (ContractLogicError, Web3RPCError, ValueError) as exc:
                raise TransactionReverted(_revert_reason(exc)) from None
        price = int(self._rpc(lambda: self._w3.eth.gas_price))
        tx.update(gas=gas, gasPrice=price, nonce=self._next_nonce(sender.address))
        del tx["from"]
        signed = sender.sign_transaction(tx)
        try:
            try:
                tx_hash = self._rpc(self._w3.eth.send_raw_transaction, signed.raw_transaction)
            except (Web3RPCError, ValueError) as exc:
                # a connection lost after the node took the transaction can make a resend (by
                # web3's retry) look like a duplicate: if it is in the chain, it went through
                if not any(w in str(exc).lower() for w in ("nonce too low", "already known")):
                    raise
                tx_hash = bytes(signed.hash)
            raw = self._wait(bytes(tx_hash))
        except ChainUnavailable:
            # the node went away before or after taking the transaction: either way the next
            # nonce must come from the node, or a nonce that was never used leaves a gap that
            # stalls every later transaction of this sender
            self._nonces.pop(sender.address, None)
            raise
        except (Web3RPCError, ValueError, ChainError) as exc:
            self._nonces.pop(sender.address, None)  # resync from the node next time
            raise ChainError(f"node rejected the transaction: {_revert_reason(exc)}") from None
        if int(raw["status"]) != 1:
            # replay as a call at the parent block to recover the reason
            reason = "reverted"
            try:
                self._rpc(
                    self._w3.eth.call,
                    cast(
                        Any, {k: v for k, v in tx.items() if k in ("to", "data")} | {"from": sender.address}
                    ),
                    int(raw["blockNumber"]) - 1,
                )
            except (ContractLogicError, Web3RPCError, ValueError) as exc:
                reason = _revert_reason(exc)
            raise TransactionReverted(reason)
        return self._receipt(raw, data)

    # -- Chain -------------------------------------------------------------------------------

    def deploy(self, sender: LocalAccount, bytecode: bytes, ctor_args: bytes = b"") -> Receipt:
        return self._transact(sender, None, bytecode + ctor_args, None)

    def send(self, sender: LocalAccount, to: str, data: bytes, *, gas: int | None = None) -> Receipt:
        return self._transact(sender, to, data, gas)

    def call(self, to: str, data: bytes, *, sender: str | None = None, block: int | None = None) -> bytes:
        tx: dict[str, Any] = {"to": to_checksum_address(to), "data": data}
        if sender:
            tx["from"] = sender
        try:
            return bytes(self._rpc(self._w3.eth.call, cast(Any, tx), "latest" if block is None else block))
        except (ContractLogicError, Web3RPCError) as exc:
            raise TransactionReverted(_revert_reason(exc)) from None

    def get_logs(self, address: str, from_block: int = 0, to_block: int | None = None) -> list[LogEntry]:
        flt: dict[str, Any] = {
            "address": to_checksum_address(address),
            "fromBlock": from_block,
            "toBlock": "latest" if to_block is None else to_block,
        }
        return [self._log(lg) for lg in self._rpc(self._w3.eth.get_logs, flt)]

    def new_event_filter(self, address: str | None) -> str:
        """An HTTP log filter on `address`'s events from now on (None: on new blocks); its id.

        For nodes without a WebSocket (`chain/wakeup.py`): `filter_changes` then says whether
        anything arrived with one call, where a pass of reads takes several.
        """
        if address is None:
            method, params = "eth_newBlockFilter", []
        else:
            flt = {"address": to_checksum_address(address), "fromBlock": "latest"}
            method, params = "eth_newFilter", [flt]
        return str(self._raw(method, params))

    def filter_changes(self, filter_id: str) -> int:
        """How many logs (or blocks) the filter caught since the last call; ChainError if it is gone."""
        return len(self._raw("eth_getFilterChanges", [filter_id]))

    def _raw(self, method: str, params: list[Any]) -> Any:
        reply = self._rpc(self._w3.provider.make_request, method, params)
        if "error" in reply:
            raise ChainError(f"{method} refused by {self.url}: {reply['error']}")
        return reply["result"]

    def block_number(self) -> int:
        return int(self._rpc(lambda: self._w3.eth.block_number))

    def code_at(self, address: str) -> bytes:
        """The contract code at `address` (empty: no contract there on this chain)."""
        return bytes(self._rpc(self._w3.eth.get_code, to_checksum_address(address)))

    def storage_at(self, address: str, slot: int) -> int:
        word = self._rpc(self._w3.eth.get_storage_at, to_checksum_address(address), slot)
        return int.from_bytes(bytes(word))

    def timestamp(self) -> int:
        return int(self._rpc(self._w3.eth.get_block, "latest")["timestamp"])

    def block_timestamp(self, number: int) -> int:
        """When block `number` was mined: a report's event log gives each event its time."""
        return int(self._rpc(self._w3.eth.get_block, number)["timestamp"])

    def now(self) -> int:
        return max(self.timestamp(), int(time.time()) + self._clock_offset)

    def increase_time(self, seconds: int) -> None:
        self._clock_offset += seconds
        self._rpc(self._w3.provider.make_request, "evm_increaseTime", [seconds])
        self._rpc(self._w3.provider.make_request, "evm_mine", [])

    def receipts(self, from_block: int = 0) -> list[Receipt]:
        out = []
        for number in range(from_block, self.block_number() + 1):
            block = self._rpc(self._w3.eth.get_block, number, True)
            for tx in block["transactions"]:
                raw = dict(self._rpc(self._w3.eth.get_transaction_receipt, tx["hash"]))
                out.append(self._receipt(raw, bytes(tx["input"])))
        return out
