"""A node's trainer and validator, built from its config: bundled share or its own source.

Kept apart from the node's event loop (`roles/node.py`) because this is where the
heavy parts are imported and the organisation's data is read and checked, once, at
start: a node whose data does not match the job's schema stops here with one line,
before it has registered or committed anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount

from fedledger.chain.contracts import Coordinator
from fedledger.errors import SpecError
from fedledger.roles.node_join import sealed_to_readers
from fedledger.roles.scorer import scorer_for
from fedledger.roles.trainer import Trainer
from fedledger.roles.validator import Validator
from fedledger.spec import JobSpec
from fedledger.store.base import BlobStore
from fedledger.training.client import NumPyClient

if TYPE_CHECKING:
    from fedledger.data.sources import DataSource
    from fedledger.training.own import LocalTrainer


def build_roles(
    *,
    job: int,
    organisation: int,
    root: bool,
    data: DataSource | None,
    spec: JobSpec,
    name: str,
    account: LocalAccount,
    coordinator: Coordinator,
    store: BlobStore,
    sponsor: str,
) -> tuple[Trainer, Validator, LocalTrainer | None]:
    """(trainer, validator, own-data trainer side or None) for this node.

    Takes the node config's fields, not the config, so this module stays below `roles/node.py`.
    """
    from fedledger.training.code import check_code_digest

    # the approved-code allowlist: refuse before any of the user's code is built or trained
    check_code_digest([spec.model, spec.client], spec.code_digest, organisation=name)
    local: LocalTrainer | None = None
    scorer = None
    if spec.own_data:
        from fedledger.training.own import local_trainer

        if data is None:
            raise SpecError(
                "data",
                f"job {job} trains on each organisation's own data ({spec.dataset}): add a "
                "[data] table with `source = …` to the node config",
            )
        local = local_trainer(spec, data, organisation=name, seed=spec.seed + organisation)
        client: NumPyClient = local.client
        names = local.names
    else:
        from fedledger.training.consortium import build_consortium

        consortium = build_consortium(spec, only=None if root else organisation - 1)
        if root:
            assert consortium.root is not None  # an FLTrust spec always holds out a root dataset
            if spec.root_dataset and spec.root_dataset != consortium.root_hash:
                raise SpecError(
                    "root_dataset",
                    f"{spec.root_dataset} is not the hash of this root dataset ({consortium.root_hash})",
                )
            client = consortium.root
        else:
            client = consortium.clients[organisation - 1]
        names = consortium.names
        scorer = scorer_for(spec, consortium) if spec.scored else None
    trainer = Trainer(
        name=name,
        account=account,
        coordinator=coordinator,
        store=sealed_to_readers(store, spec),  # updates sealed to the readers; aggregates plain
        client=client,
        names=names,
        spec=spec,
        job_id=job,
        features=local.features if local is not None else None,
    )
    validator = Validator(
        name=name,
        account=account,
        coordinator=coordinator,
        store=store,
        spec=spec,
        job_id=job,
        scorer=scorer,
        root_trainer=sponsor,
    )
    return trainer, validator, local
