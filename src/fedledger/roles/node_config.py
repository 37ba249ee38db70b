"""A node's TOML config: where its chain, job, key, spec, stores and own data are.

Read and checked before anything connects, so a typo in the file is one line naming
the key, not a failure halfway through startup (`roles/node.py` starts from this).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fedledger.errors import SpecError


class DataConfig(BaseModel):
    """A node's `[data]` table: this organisation's own source, which never leaves its process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="a CSV / Parquet file, an image folder, or a SQLAlchemy database URL")
    query: str = Field("", description="database sources: the SELECT that yields the rows")
    opening: Path | None = Field(
        None,
        description="where the node keeps its data opening, the salt of its data commitment "
        "(PRIVATE; default: beside the config, <config>.job<N>.opening.json)",
    )


class NodeConfig(BaseModel):
    """A node's TOML file; field names are the keys."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpc: str = Field(description="JSON-RPC URL of the chain")
    chain_id: int | None = Field(None, description="refuse a node whose chain id differs (recommended)")
    coordinator: str = Field(description="coordinator contract address")
    job: int = Field(ge=1, description="job id")
    key: str = Field(description="dev:N or an encrypted keystore file ($FEDLEDGER_PASSPHRASE)")
    spec: Path = Field(description="the job's spec file; must hash to the job's on-chain spec hash")
    organisation: int = Field(
        0, ge=0, description="which share of the spec's data split is this node's (1-based)"
    )
    root: bool = Field(
        False,
        description="FLTrust: this is the sponsor's node and trains the root update on the root dataset",
    )
    trainer: bool = True
    validator: bool = True
    store: str = Field(description="own blob store: a directory or the URL of its `store serve`")
    peers: list[str] = Field(default_factory=list, description="other organisations' stores to read from")
    ca_bundle: Path | None = Field(
        None,
        description="PEM CA certificate(s) that https peers' and the https RPC's certificates must "
        "chain to (a consortium's own CA); default: the system's trust store",
    )
    data: DataConfig | None = Field(None, description="own-data jobs: this organisation's source")
    poll_seconds: float = Field(0.2, gt=0, description="how often to read the chain when no event is pushed")
    events: Literal["push", "poll"] = Field(
        "push",
        description="push: wake on the coordinator's events (eth_subscribe over WebSocket, else HTTP "
        "log filters), polling while no subscription is live; poll: read every poll_seconds",
    )
    ws: str | None = Field(
        None, description="WebSocket URL for pushed events (default: the rpc URL as ws:// or wss://)"
    )
    recheck_seconds: float = Field(
        2.0, gt=0, description="with events pushed: read the chain at least this often (deadlines)"
    )
    trace: Path | None = Field(
        None,
        description="append each protocol step this node takes, with its wall-clock time, to this "
        "file (JSON lines; bench/deployment.py's phase breakdown reads them)",
    )
    confirmations: int = Field(0, ge=0, le=1000, description="blocks an event must be deep before acting")
    speculate: bool = Field(
        True, description="train the next round on this validator's own aggregate while the quorum forms"
    )
    availability_wait_s: float = Field(
        30.0, ge=0, description="how long a validator waits for a committed blob before excluding it"
    )
    join_wait_s: float = Field(
        10.0,
        ge=0,
        description="how long a trainer holds the job's first commit while fewer organisations than the "
        "spec's trainers have registered (a round closes once every registered trainer has committed)",
    )
    testing_fault: Literal["lying-proposer", "excluding-proposer", "silent-proposer"] | None = Field(
        None,
        description="TESTING ONLY, never on a real node: makes this node misbehave on purpose for tests "
        "and demos. lying-proposer: in an optimistic-mode job it posts claims with one aggregate value "
        "changed (the simulator's fault of that name), so that the committee proves it wrong; "
        "excluding-proposer: it leaves the last committed update out, so that the committee votes; "
        "silent-proposer: it never posts a claim, so another bonded node must after proposal_window_s",
    )
    testing_fault_from_round: int = Field(
        1, ge=1, description="TESTING ONLY: the first round of testing_fault"
    )

    @classmethod
    def load(cls, path: str | Path) -> NodeConfig:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SpecError("node config", f"cannot read {p}: {exc}") from None
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise SpecError(f"node config: {'.'.join(map(str, err['loc']))}", err["msg"]) from None
        if not cfg.spec.is_absolute():
            cfg = cfg.model_copy(update={"spec": p.parent / cfg.spec})
        if cfg.trace is not None and not cfg.trace.is_absolute():
            cfg = cfg.model_copy(update={"trace": p.parent / cfg.trace})
        if cfg.ca_bundle is not None and not cfg.ca_bundle.is_absolute():
            cfg = cfg.model_copy(update={"ca_bundle": p.parent / cfg.ca_bundle})
        if cfg.data is not None:
            own = cfg.data
            if "://" not in own.source and not Path(own.source).is_absolute():
                own = own.model_copy(update={"source": str(p.parent / own.source)})
            opening = own.opening or Path(f"{p.stem}.job{cfg.job}.opening.json")
            own = own.model_copy(update={"opening": p.parent / opening})
            cfg = cfg.model_copy(update={"data": own})
        return cfg
