"""Reading a run directory's chain.json: refused, in one line, unless the audit can read it.

The shape is checked here (UTF-8, JSON, the keys and types the audit reads, a known chain
kind); the values are not: re-execution (`audit/replay.py`) finds edited ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from fedledger.chain.export import EXPORT_FORMAT
from fedledger.errors import AuditFailure

#: how deep a run's JSON may nest before it is refused (none of the files a run writes nests past 10)
JSON_DEPTH = 500

#: the kinds of chain an export comes from: re-executed here, or read as exported
CHAIN_KINDS = ("inprocess", "rpc")

#: what every exported transaction and event must hold for the audit to read it: key -> types
_TX_FIELDS: dict[str, tuple[type, ...]] = {
    "from": (str,),
    "to": (str, type(None)),
    "input": (str,),
    "block_number": (int,),
    "timestamp": (int,),
}
_EVENT_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "args": (dict,),
    "address": (str,),
    "block_number": (int,),
    "tx_hash": (str,),
    "log_index": (int,),
}
_TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "chain": (dict,),
    "contracts": (dict,),
    "job_id": (int,),
    "transactions": (list,),
    "events": (list,),
}


def load_export(path: Path) -> dict[str, Any]:
    """Reads a chain export, refusing (one line naming the file and the entry) one the audit
    cannot read: not UTF-8, not JSON, or missing a key or holding a wrong type where it reads one.

    Well-formed but edited values are not refused here: re-execution finds those.
    """
    try:
        export = parse_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuditFailure(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise AuditFailure(f"{path} is not UTF-8 (byte {exc.start}): not a chain export") from None
    except ValueError as exc:
        raise AuditFailure(f"{path} is not valid JSON ({' '.join(str(exc).split())}): truncated?") from None
    if not isinstance(export, dict) or export.get("format") != EXPORT_FORMAT:
        raise AuditFailure(f"{path} is not a fedledger chain export ({EXPORT_FORMAT})")
    _check_fields(path, "the export", export, _TOP_FIELDS)
    participants = export.get("participants", {})
    if not isinstance(participants, dict):
        raise AuditFailure(f"{path}: participants is {_kind(participants)}, not an object")
    for name in ("Coordinator", "RewardToken", "DataRegistry"):
        address = export["contracts"].get(name, "" if name == "DataRegistry" else None)
        if not isinstance(address, str):  # exports from before the data registry lack one
            raise AuditFailure(f"{path}: contracts has no {name} address")
    kind = export["chain"].get("kind")
    if kind not in CHAIN_KINDS:
        raise AuditFailure(
            f"{path}: chain 'kind' is {kind!r}; an export is 'inprocess' (re-executed) or 'rpc' (read as is)"
        )
    block_time = export["chain"].get("block_time", 1)
    if not isinstance(block_time, int) or isinstance(block_time, bool):
        raise AuditFailure(f"{path}: chain 'block_time' is {_kind(block_time)}, not an integer")
    for what, entries, fields in (
        ("transaction", export["transactions"], _TX_FIELDS),
        ("event", export["events"], _EVENT_FIELDS),
    ):
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise AuditFailure(f"{path}: {what} #{i} is {_kind(entry)}, not an object")
            _check_fields(path, f"{what} #{i}", entry, fields)
    return export


def parse_json(text: str, **kwargs: Any) -> Any:
    """`json.loads`, with a deeply nested document refused as ValueError instead of crashing.

    Importing the EVM raises Python's recursion limit far past what the C stack holds, so the
    C decoder would overflow the stack (a segfault, no message) on a forged file of a few
    hundred thousand brackets; under a small limit it raises RecursionError, turned here into
    the ValueError every caller already reports as malformed JSON.
    """
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(min(limit, JSON_DEPTH + _depth()))
    try:
        return json.loads(text, **kwargs)
    except RecursionError:
        raise ValueError(f"nested deeper than {JSON_DEPTH} levels") from None
    finally:
        sys.setrecursionlimit(limit)


def _depth() -> int:
    """How many frames are on the stack now: the recursion limit counts them too."""
    frame: FrameType | None = sys._getframe()
    n = 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def _check_fields(path: Path, where: str, obj: dict[str, Any], fields: dict[str, tuple[type, ...]]) -> None:
    for key, types in fields.items():
        if key not in obj:
            raise AuditFailure(f"{path}: {where} has no {key!r}")
        value = obj[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            want = " or ".join("null" if t is type(None) else _TYPE_NAMES.get(t, t.__name__) for t in types)
            raise AuditFailure(f"{path}: {where} {key!r} is {_kind(value)}, not {want}")


_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")
