"""Organisations' local training as Ray tasks: a local Ray by default, or an existing cluster.

Memory: the train arrays go into Ray's object store once (`ray.put`), and every task maps
them read-only from shared memory, so a thousand organisations share one copy; each task
receives only its partition's row indices and seed, builds its model, trains it and
returns the weights, so a model exists only while a worker trains it. The global weights
are put once a round and shared by that round's tasks the same way.

Resources: each task asks for `client_resources`, Flower's name and meaning
(`{"num_cpus": 1, "num_gpus": 0}`: at most num_cpus / 1 tasks at once on a machine). A local
Ray is started with `num_cpus` (default: every core), no dashboard and quiet logs, and is
shut down by `close`; with `address` the backend joins a running cluster (`ray start
--head` and `ray start --address=…` on each machine, fedledger installed on each) and
leaves it running. An unreachable address is refused in one line after a 3 s TCP probe,
because `ray.init` itself retries for minutes.

Determinism: a worker sets torch's threads to the driver's count, so its kernels reduce in
the same order and the weights, hence the commitments, equal the in-process backend's
(tests/integration/test_ray_backend.py checks the final model's bytes).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fedledger.errors import BackendError
from fedledger.training.client import Config, Metrics, NDArrays, NumPyClient
from fedledger.training.partition_client import PartitionClient, fit_rows

RESOURCE_KEYS = ("num_cpus", "num_gpus")


@dataclass(frozen=True, kw_only=True)
class ClientResources:
    """What one organisation's training task reserves, as Flower's `client_resources`."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0

    @classmethod
    def parse(cls, text: str) -> ClientResources:
        """From JSON such as '{"num_cpus": 1, "num_gpus": 0}'; a mistake is one line."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BackendError(f"--client-resources is not JSON ({exc.msg}): {text!r}") from None
        if not isinstance(data, dict):
            example = '{"num_cpus": 1}'
            raise BackendError(f"--client-resources must be a JSON object such as {example}: {text!r}")
        unknown = sorted(set(data) - set(RESOURCE_KEYS))
        if unknown:
            known = ", ".join(RESOURCE_KEYS)
            raise BackendError(f"--client-resources: unknown key {unknown[0]!r}; known: {known}")
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise BackendError(f"--client-resources: {key} must be a number >= 0, got {value!r}")
        if data.get("num_cpus", 1) == 0 and data.get("num_gpus", 0) == 0:
            raise BackendError("--client-resources: a task must reserve some num_cpus or num_gpus")
        return cls(**{k: float(v) for k, v in data.items()})


@dataclass(frozen=True, kw_only=True)
class RayConfig:
    """Where and how the organisations' training runs on Ray."""

    address: str | None = None  # None: start a local Ray; else join this cluster ("auto", "host:port")
    num_cpus: int | None = None  # a local Ray's CPUs (default: every core)
    client_resources: ClientResources = field(default_factory=ClientResources)


def _probe(address: str) -> None:
    """Refuses an address nothing listens on, in 3 s rather than ray.init's minutes of retries."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise BackendError(f"--ray-address {address!r} is not host:port (or auto, or ray://host:port)")
    try:
        socket.create_connection((host, int(port)), timeout=3.0).close()
    except OSError as exc:
        raise BackendError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


class RayClient(NumPyClient):
    """The client a trainer calls: its fit's result comes from the task its round launched."""

    def __init__(self, backend: RayBackend, part: PartitionClient) -> None:
        self.backend = backend
        self.part = part

    def get_parameters(self, config: Config) -> NDArrays:
        return self.part.get_parameters(config)

    def fit(self, parameters: NDArrays, config: Config) -> tuple[NDArrays, int, Metrics]:
        return self.backend.result(self, parameters, config)

    def evaluate(self, parameters: NDArrays, config: Config) -> tuple[float, int, Metrics]:
        return self.part.evaluate(parameters, config)


class RayBackend:
    """Runs each organisation's fit as a Ray task; see the module docstring."""

    lazy = True

    def __init__(self, config: RayConfig) -> None:
        try:
            import ray
        except ImportError:
            raise BackendError(
                "--backend ray needs Ray: pip install 'flwr[simulation]==1.42.0' (it pins ray 2.55.1)"
            ) from None
        self._ray: Any = ray  # untyped; only called through here
        self.config = config
        self._started = False
        options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                   "log_to_driver": False}  # fmt: skip
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")  # silences a FutureWarning
        if not ray.is_initialized():
            if config.address is not None:
                _probe(config.address)
                try:
                    ray.init(address=config.address, **options)
                except (ConnectionError, RuntimeError, ValueError) as exc:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise BackendError(f"cannot join the Ray cluster at {config.address}: {first}") from None
            else:
                ray.init(num_cpus=config.num_cpus or os.cpu_count() or 1, **options)
            self._started = True
        where = config.address or f"local, {int(self._ray.cluster_resources().get('CPU', 0))} CPUs"
        res = config.client_resources
        self.description = f"Ray ({where}; {res.num_cpus:g} CPU, {res.num_gpus:g} GPU per organisation)"
        # the arrays arrive in the worker mapped from the object store (top-level refs)
        self._remote: Any = self._ray.remote(fit_rows).options(num_cpus=res.num_cpus, num_gpus=res.num_gpus)
        self._data: dict[int, tuple[Any, Any, tuple[tuple[int, ...], int]]] = {}  # id(dataset) -> refs
        self._pending: dict[int, tuple[NDArrays, Config, Any]] = {}  # id(client) -> launched fit
        self.launched = 0

    def attach(self, clients: Sequence[NumPyClient]) -> list[NumPyClient]:
        out: list[NumPyClient] = []
        for i, c in enumerate(clients, start=1):
            if not isinstance(c, PartitionClient):
                raise BackendError(
                    f"--backend ray trains the bundled datasets' partitions; organisation {i} has a "
                    f"{type(c).__name__} (own data, a Flower client, an attack or a profile): run it "
                    "with the in-process backend"
                )
            key = id(c.dataset)
            if key not in self._data:  # one copy of the train arrays for every organisation
                ds = c.dataset
                self._data[key] = (self._ray.put(ds.x_train), self._ray.put(ds.y_train),
                                   (ds.input_shape, ds.num_classes))  # fmt: skip
            out.append(RayClient(self, c))
        return out

    def _launch(self, client: RayClient, params_ref: Any, config: Config) -> Any:
        import torch

        part = client.part
        x_ref, y_ref, shape = self._data[id(part.dataset)]
        self.launched += 1
        return self._remote.remote(part.spec, x_ref, y_ref, part.rows, part.seed, params_ref, config,
                                   input_shape=shape[0], num_classes=shape[1],
                                   threads=torch.get_num_threads())  # fmt: skip

    def start_round(self, round: int, parameters: NDArrays, clients: Sequence[NumPyClient]) -> None:
        self._pending.clear()  # a fit launched for a trainer that never asked is dropped
        params_ref = self._ray.put(parameters)
        config: Config = {"round": round}
        for c in clients:
            if isinstance(c, RayClient):
                self._pending[id(c)] = (parameters, config, self._launch(c, params_ref, config))

    def result(
        self, client: RayClient, parameters: NDArrays, config: Config
    ) -> tuple[NDArrays, int, Metrics]:
        """The launched fit's result if it trained these very weights and config; else a fit now."""
        launched = self._pending.pop(id(client), None)
        if launched is not None:
            params, cfg, ref = launched
            same = cfg == config and len(params) == len(parameters)
            if same and all(np.array_equal(a, b) for a, b in zip(params, parameters, strict=True)):
                out: tuple[NDArrays, int, Metrics] = self._ray.get(ref)
                return out
        out = self._ray.get(self._launch(client, self._ray.put(parameters), config))
        return out

    def close(self) -> None:
        self._pending.clear()
        self._data.clear()
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def __enter__(self) -> RayBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
