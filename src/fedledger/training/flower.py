"""An organisation's existing Flower client, run unchanged as a fedledger client.

`load_flower_client("my_app.client_app:client_fn", ...)` accepts what a Flower app
already has:

* a `flwr.client.NumPyClient` subclass: instantiated as Cls(context) when its `__init__`
  has a parameter named context or any required parameter, else as Cls() (a module-level
  NumPyClient instance works too);
* a `client_fn(context) -> flwr.client.Client` (`return FlowerClient().to_client()`;
  returning the NumPyClient itself is accepted, as Flower does);
* a `flwr.client.ClientApp(client_fn=...)`. In flwr 1.42 the ClientApp keeps its
  client_fn only inside a private closure (`ClientApp._call`), so it is driven the way a
  SuperNode drives it, through its public `__call__(message, context)` with Flower's
  legacy message types ("get_parameters", "train", "evaluate") and Flower's own
  converters (`flwr.compat.common.recorddict_compat`), exactly as `handle_legacy_message_
  from_msgtype` unpacks them. The message is built from an explicit `flwr.common.Metadata`
  (run_id 0, from node 0, group_id the round), because `Message(content, dst_node_id,
  message_type)` reads the identity of a running ServerApp process, which is unset here.
  A ClientApp written against Flower's Message API
  (`@app.train()` functions and no client_fn) has no get_parameters/fit/evaluate
  contract to map and is refused with a message saying so.

The Context is built the way Flower's simulation builds a node's: node_config holds
{"partition-id": i, "num-partitions": n} (ints, as the simulation engine sets them) on top
of whatever node_config the caller passes (fedledger's node passes its own keys, e.g.
"data-source", the organisation's configured source); run_config is the caller's mapping;
state is a fresh RecordDict kept for the client's life; run_id is 0 and node_id is
partition_id + 1 (the organisation's number in a consortium).

fedledger calls client_fn once and reuses the Client (Flower calls it per message; a client
that keeps nothing between calls except in context.state behaves the same); a ClientApp
is called per message, so its client_fn runs every call, as in Flower. fit's config is
fedledger's ({"round": r}) with Flower's "server-round" added, so a client reading
config["server-round"] works unchanged.

flwr is an optional dependency (`fedledger[flower]`) imported only here, when a Flower
client is loaded. What the wrapper checks is the contract's shape (tuples, array count
and shapes against the parameters it was given); non-finite weights are the validators'
concern.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from fedledger.errors import CodeError
from fedledger.training.client import Config, Metrics, NDArrays, NumPyClient, Scalar
from fedledger.training.code import describe_error, load_ref

FIELD = "client"


def _flwr() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(flwr.client, flwr.common, flwr.compat.common.recorddict_compat), imported on first use."""
    try:
        import flwr.client as fl_client
        import flwr.common as fl_common
        import flwr.compat.common.recorddict_compat as compat
    except ImportError:
        raise CodeError(FIELD, "running a Flower client needs flwr: install fedledger[flower]") from None
    return fl_client, fl_common, compat


def make_context(
    *,
    partition_id: int,
    num_partitions: int,
    node_config: Mapping[str, Scalar] = {},
    run_config: Mapping[str, Scalar] = {},
) -> Any:
    """A `flwr.common.Context` like the simulation engine's for partition `partition_id` of n."""
    _, fl_common, _ = _flwr()
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition_id {partition_id} outside 0..{num_partitions - 1}")
    config = {**node_config, "partition-id": partition_id, "num-partitions": num_partitions}
    return fl_common.Context(
        run_id=0,
        node_id=partition_id + 1,
        node_config=config,
        state=fl_common.RecordDict(),
        run_config=dict(run_config),
    )


def _flower_config(config: Config) -> Config:
    out = dict(config)
    if "round" in out and "server-round" not in out:
        out["server-round"] = out["round"]
    return out


def _call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except CodeError:
        raise
    except Exception as exc:  # the user's code: one line saying what it raised
        raise CodeError(FIELD, f"{what} raised {describe_error(exc)}") from None


def _check_arrays(what: str, arrays: Any, reference: NDArrays | None) -> NDArrays:
    """A list of ndarrays; with a reference, the same count and shape at every index."""
    if not isinstance(arrays, list | tuple) or not all(isinstance(a, np.ndarray) for a in arrays):
        raise CodeError(FIELD, f"{what} returned {type(arrays).__name__}, not a list of numpy arrays")
    out = list(arrays)
    if reference is not None:
        if len(out) != len(reference):
            raise CodeError(FIELD, f"{what} returned {len(out)} arrays for {len(reference)} parameters")
        for i, (got, want) in enumerate(zip(out, reference, strict=True)):
            if got.shape != np.shape(want):
                raise CodeError(
                    FIELD, f"{what}: array {i} has shape {got.shape}, the parameters' has {np.shape(want)}"
                )
    return out


def _check_fit(what: str, result: Any, parameters: NDArrays) -> tuple[NDArrays, int, Metrics]:
    if not isinstance(result, tuple) or len(result) != 3:
        got = f"a {len(result)}-tuple" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise CodeError(FIELD, f"{what} returned {got}, not (parameters, num_examples, metrics)")
    arrays, num_examples, metrics = result
    if not isinstance(num_examples, int | np.integer) or isinstance(num_examples, bool):
        raise CodeError(FIELD, f"{what}: num_examples is a {type(num_examples).__name__}, not an int")
    if not isinstance(metrics, Mapping):
        raise CodeError(FIELD, f"{what}: metrics is a {type(metrics).__name__}, not a dict")
    return _check_arrays(what, arrays, parameters), int(num_examples), dict(metrics)


def _check_evaluate(what: str, result: Any) -> tuple[float, int, Metrics]:
    if not isinstance(result, tuple) or len(result) != 3:
        got = f"a {len(result)}-tuple" if isinstance(result, tuple) else f"a {type(result).__name__}"
        raise CodeError(FIELD, f"{what} returned {got}, not (loss, num_examples, metrics)")
    loss, num_examples, metrics = result
    if not isinstance(metrics, Mapping):
        raise CodeError(FIELD, f"{what}: metrics is a {type(metrics).__name__}, not a dict")
    return float(loss), int(num_examples), dict(metrics)


class FlowerNumPyClient(NumPyClient):
    """fedledger's client over a user's `flwr.client.NumPyClient`: same calls, checked results."""

    def __init__(self, inner: Any, ref: str) -> None:
        self.inner = inner
        self.ref = ref

    def get_parameters(self, config: Config) -> NDArrays:
        what = f"{self.ref}: get_parameters"
        return _check_arrays(what, _call(what, self.inner.get_parameters, _flower_config(config)), None)

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        what = f"{self.ref}: fit"
        return _check_fit(what, _call(what, self.inner.fit, parameters, _flower_config(config)), parameters)

    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        what = f"{self.ref}: evaluate"
        return _check_evaluate(what, _call(what, self.inner.evaluate, parameters, _flower_config(config)))


class FlowerClient(NumPyClient):
    """fedledger's client over a `flwr.client.Client`: ndarrays <-> `Parameters` with flwr's helpers."""

    def __init__(self, inner: Any, ref: str) -> None:
        self.inner = inner
        self.ref = ref

    def _status(self, what: str, res: Any) -> None:
        _, fl_common, _ = _flwr()
        if res.status.code != fl_common.Code.OK:
            raise CodeError(FIELD, f"{what} answered status {res.status.code.name}: {res.status.message}")

    def get_parameters(self, config: Config) -> NDArrays:
        _, fl_common, _ = _flwr()
        what = f"{self.ref}: get_parameters"
        ins = fl_common.GetParametersIns(config=_flower_config(config))
        res = _call(what, self.inner.get_parameters, ins)
        self._status(what, res)
        return _check_arrays(what, fl_common.parameters_to_ndarrays(res.parameters), None)

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        _, fl_common, _ = _flwr()
        what = f"{self.ref}: fit"
        ins = fl_common.FitIns(fl_common.ndarrays_to_parameters(parameters), _flower_config(config))
        res = _call(what, self.inner.fit, ins)
        self._status(what, res)
        arrays = fl_common.parameters_to_ndarrays(res.parameters)
        return _check_fit(what, (arrays, res.num_examples, res.metrics), parameters)

    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        _, fl_common, _ = _flwr()
        what = f"{self.ref}: evaluate"
        ins = fl_common.EvaluateIns(fl_common.ndarrays_to_parameters(parameters), _flower_config(config))
        res = _call(what, self.inner.evaluate, ins)
        self._status(what, res)
        return _check_evaluate(what, (res.loss, res.num_examples, res.metrics))


class FlowerClientApp(NumPyClient):
    """fedledger's client over a `flwr.client.ClientApp(client_fn=...)`, one Message per call."""

    def __init__(self, app: Any, ref: str, context: Any) -> None:
        self.app = app
        self.ref = ref
        self.context = context

    def _send(self, what: str, message_type: str, content: Any, group_id: str = "") -> Any:
        _, fl_common, _ = _flwr()
        # Message(content, dst_node_id, message_type) reads the ServerApp process's TaskIdentity,
        # unset outside one; the node side builds received messages from their Metadata instead.
        metadata = fl_common.Metadata(
            run_id=self.context.run_id,
            message_id="",
            src_node_id=0,  # the coordinator
            dst_node_id=self.context.node_id,
            reply_to_message_id="",
            group_id=group_id,
            created_at=fl_common.now().timestamp(),
            ttl=fl_common.DEFAULT_TTL,
            message_type=message_type,
        )
        message = fl_common.Message(content=content, metadata=metadata)
        try:
            reply = self.app(message, self.context)
        except CodeError:
            raise
        except ValueError as exc:
            if "registered" in str(exc) or "Invalid message type" in str(exc):
                raise CodeError(
                    FIELD,
                    f"{self.ref} is a ClientApp without a client_fn (Flower's Message API, @app.train); "
                    "fedledger runs ClientApp(client_fn=...) apps: name the client_fn instead",
                ) from None
            raise CodeError(FIELD, f"{what} raised {describe_error(exc)}") from None
        except Exception as exc:
            raise CodeError(FIELD, f"{what} raised {describe_error(exc)}") from None
        if reply.has_error():
            raise CodeError(FIELD, f"{what} replied with error {reply.error.code}: {reply.error.reason}")
        return reply.content

    def get_parameters(self, config: Config) -> NDArrays:
        _, fl_common, compat = _flwr()
        what = f"{self.ref}: get_parameters"
        ins = fl_common.GetParametersIns(config=_flower_config(config))
        content = self._send(
            what, fl_common.MessageTypeLegacy.GET_PARAMETERS, compat.getparametersins_to_recorddict(ins)
        )
        res = compat.recorddict_to_getparametersres(content, keep_input=False)
        return _check_arrays(what, fl_common.parameters_to_ndarrays(res.parameters), None)

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        _, fl_common, compat = _flwr()
        what = f"{self.ref}: fit"
        ins = fl_common.FitIns(fl_common.ndarrays_to_parameters(parameters), _flower_config(config))
        content = self._send(
            what, fl_common.MessageType.TRAIN, compat.fitins_to_recorddict(ins, keep_input=True)
        )
        res = compat.recorddict_to_fitres(content, keep_input=False)
        arrays = fl_common.parameters_to_ndarrays(res.parameters)
        return _check_fit(what, (arrays, res.num_examples, res.metrics), parameters)

    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        _, fl_common, compat = _flwr()
        what = f"{self.ref}: evaluate"
        ins = fl_common.EvaluateIns(fl_common.ndarrays_to_parameters(parameters), _flower_config(config))
        content = self._send(
            what, fl_common.MessageType.EVALUATE, compat.evaluateins_to_recorddict(ins, keep_input=True)
        )
        res = compat.recorddict_to_evaluateres(content)
        return _check_evaluate(what, (res.loss, res.num_examples, res.metrics))


def _takes_context(cls: type) -> bool:
    """Whether `cls(...)` is given the Context: it has a parameter named context, or a required one."""
    try:
        params = list(inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return False
    named = any(p.name == "context" for p in params)
    required = any(p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)
    return named or required


def _instantiate(ref: str, cls: type, context: Any) -> Any:
    with_context = _takes_context(cls)
    try:
        return cls(context) if with_context else cls()
    except Exception as exc:
        hint = (
            "; a NumPyClient named directly is built as Cls(context) or Cls(): name your client_fn instead"
            if isinstance(exc, TypeError)
            else ""
        )
        call = f"{ref}({'context' if with_context else ''})"
        raise CodeError(FIELD, f"{call} raised {describe_error(exc)}{hint}") from None


def load_flower_client(
    ref: str,
    *,
    partition_id: int,
    num_partitions: int,
    node_config: Mapping[str, Scalar] = {},
    run_config: Mapping[str, Scalar] = {},
) -> NumPyClient:
    """The Flower client, client_fn or ClientApp that `ref` names, as a fedledger `NumPyClient`."""
    fl_client, _, _ = _flwr()
    target = load_ref(ref, field=FIELD)
    context = make_context(
        partition_id=partition_id,
        num_partitions=num_partitions,
        node_config=node_config,
        run_config=run_config,
    )
    if isinstance(target, type) and issubclass(target, fl_client.NumPyClient):
        return FlowerNumPyClient(_instantiate(ref, target, context), ref)
    if isinstance(target, fl_client.NumPyClient):
        return FlowerNumPyClient(target, ref)
    if isinstance(target, fl_client.Client):
        return FlowerClient(target, ref)
    if isinstance(target, fl_client.ClientApp):
        return FlowerClientApp(target, ref, context)
    if isinstance(target, type) or not callable(target):
        kind = f"class {target.__name__}" if isinstance(target, type) else type(target).__name__
        raise CodeError(
            FIELD,
            f"{ref} is a {kind}, not a flwr NumPyClient subclass, a client_fn(context) or a ClientApp",
        )
    client = _call(f"{ref}(context)", target, context)
    if isinstance(client, fl_client.Client):
        return FlowerClient(client, ref)
    if isinstance(client, fl_client.NumPyClient):
        return FlowerNumPyClient(client, ref)
    raise CodeError(
        FIELD,
        f"{ref}(context) returned a {type(client).__name__}, not a flwr Client "
        "(end client_fn with `return FlowerClient().to_client()`)",
    )
