"""ABI encoding and decoding shared by every chain backend.

Both backends speak raw calldata and raw logs; this module turns them into
Python values. Keeping the codec here (not in web3's contract objects, not in
titanoboa's) is what lets one typed contract client and one conformance suite
run unchanged against the in-process EVM and any JSON-RPC node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from fedledger.errors import ChainError

ERROR_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)


def abi_type(param: dict[str, Any]) -> str:
    """The canonical type string of an ABI parameter, expanding tuples (structs)."""
    t: str = param["type"]
    if t.startswith("tuple"):
        inner = ",".join(abi_type(c) for c in param["components"])
        return f"({inner}){t[len('tuple') :]}"
    return t


def _to_python(param: dict[str, Any], value: Any) -> Any:
    """Decoded ABI value → plain Python: checksummed addresses, dicts for structs."""
    t: str = param["type"]
    if t.endswith("[]"):
        inner = dict(param, type=t[:-2])
        return [_to_python(inner, v) for v in value]
    if t == "tuple":
        return {c["name"]: _to_python(c, v) for c, v in zip(param["components"], value, strict=True)}
    if t == "address":
        return to_checksum_address(value)
    return value


def _from_python(param: dict[str, Any], value: Any) -> Any:
    """Python value → what eth_abi expects (dicts for structs become tuples)."""
    t: str = param["type"]
    if t.endswith("[]"):
        inner = dict(param, type=t[:-2])
        return [_from_python(inner, v) for v in value]
    if t == "tuple":
        if isinstance(value, dict):
            return tuple(_from_python(c, value[c["name"]]) for c in param["components"])
        return tuple(_from_python(c, v) for c, v in zip(param["components"], value, strict=True))
    return value


@dataclass(frozen=True)
class Function:
    name: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    selector: bytes
    mutating: bool

    def encode_call(self, *args: Any) -> bytes:
        if len(args) != len(self.inputs):
            raise TypeError(f"{self.name} takes {len(self.inputs)} arguments, got {len(args)}")
        types = [abi_type(p) for p in self.inputs]
        values = [_from_python(p, a) for p, a in zip(self.inputs, args, strict=True)]
        return self.selector + encode(types, values)

    def decode_result(self, data: bytes) -> Any:
        types = [abi_type(p) for p in self.outputs]
        values = decode(types, data)
        out = [_to_python(p, v) for p, v in zip(self.outputs, values, strict=True)]
        if len(out) == 1:
            return out[0]
        return tuple(out)

    def decode_args(self, calldata: bytes) -> dict[str, Any]:
        types = [abi_type(p) for p in self.inputs]
        values = decode(types, calldata[4:])
        return {p["name"]: _to_python(p, v) for p, v in zip(self.inputs, values, strict=True)}


@dataclass(frozen=True)
class EventType:
    name: str
    inputs: list[dict[str, Any]]
    topic: bytes

    def decode(self, topics: list[bytes], data: bytes) -> dict[str, Any]:
        indexed = [p for p in self.inputs if p.get("indexed")]
        plain = [p for p in self.inputs if not p.get("indexed")]
        if len(topics) != len(indexed) + 1:
            raise ChainError(f"event {self.name}: expected {len(indexed) + 1} topics, got {len(topics)}")
        out: dict[str, Any] = {}
        for p, topic in zip(indexed, topics[1:], strict=True):
            out[p["name"]] = _to_python(p, decode([abi_type(p)], topic)[0])
        values = decode([abi_type(p) for p in plain], data)
        for p, v in zip(plain, values, strict=True):
            out[p["name"]] = _to_python(p, v)
        return {p["name"]: out[p["name"]] for p in self.inputs}


class ContractABI:
    """Functions by name and selector, events by topic, for one contract."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.functions: dict[str, Function] = {}
        self.by_selector: dict[bytes, Function] = {}
        self.events: dict[bytes, EventType] = {}
        self.event_names: dict[str, EventType] = {}
        self.constructor_inputs: list[dict[str, Any]] = []
        for item in abi:
            kind = item.get("type")
            if kind == "function":
                sig = f"{item['name']}({','.join(abi_type(p) for p in item['inputs'])})"
                fn = Function(
                    name=item["name"],
                    inputs=item["inputs"],
                    outputs=item.get("outputs", []),
                    selector=bytes(keccak(text=sig))[:4],
                    mutating=item.get("stateMutability") not in ("view", "pure"),
                )
                self.functions[fn.name] = fn
                self.by_selector[fn.selector] = fn
            elif kind == "event":
                sig = f"{item['name']}({','.join(abi_type(p) for p in item['inputs'])})"
                ev = EventType(name=item["name"], inputs=item["inputs"], topic=bytes(keccak(text=sig)))
                self.events[ev.topic] = ev
                self.event_names[ev.name] = ev
            elif kind == "constructor":
                self.constructor_inputs = item["inputs"]

    def encode_constructor(self, *args: Any) -> bytes:
        types = [abi_type(p) for p in self.constructor_inputs]
        return encode(types, [_from_python(p, a) for p, a in zip(self.constructor_inputs, args, strict=True)])

    def decode_calldata(self, calldata: bytes) -> tuple[str, dict[str, Any]]:
        fn = self.by_selector.get(bytes(calldata[:4]))
        if fn is None:
            return ("<unknown>", {})
        return fn.name, fn.decode_args(calldata)


def decode_revert(data: bytes) -> str:
    """The revert string of `Error(string)` return data, or a short description."""
    if data[:4] == ERROR_SELECTOR:
        try:
            return str(decode(["string"], data[4:])[0])
        except Exception:
            return f"malformed revert data 0x{data.hex()}"
    if not data:
        return "reverted without reason"
    return f"reverted with data 0x{data.hex()}"
