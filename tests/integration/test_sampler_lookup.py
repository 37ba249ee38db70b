"""Finding a coordinator's sampler from its address alone, on both chain backends.

The coordinator has no room for a `sampler()` getter (EIP-170), so `Coordinator.sampler`
reads its `_sampler` storage slot (in the rounds.vy module). If a change to the coordinator
or its modules moves that slot, the first test fails before any node looks in the wrong place.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount

from fedledger.chain.artifacts import contracts_dir
from fedledger.chain.base import Chain
from fedledger.chain.contracts import Coordinator, Deployment
from fedledger.chain.coordinator import SAMPLER_SLOT


def test_sampler_slot_is_the_compilers() -> None:
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FileInput, FilesystemInputBundle

    root = contracts_dir()
    path = root / "coordinator.vy"
    source = FileInput(source_id=0, contents=path.read_text(), path=path, resolved_path=path)
    out = compile_from_file_input(
        source, input_bundle=FilesystemInputBundle([root]), output_formats=["layout"]
    )
    # the coordinator initializes rounds.vy, whose `_sampler` the layout lists under the module
    assert out["layout"]["storage_layout"]["rounds"]["_sampler"]["slot"] == SAMPLER_SLOT


def test_a_coordinator_found_by_address_names_its_sampler(chain: Chain, deployed: Deployment) -> None:
    assert deployed.sampler is not None
    found = Coordinator(chain, deployed.coordinator.address).sampler()
    assert found is not None and found.address == deployed.sampler.address
    # and the sampler agrees it is bound to this coordinator
    assert str(found.read("coordinator")) == deployed.coordinator.address
    # a contract that is not a coordinator has nothing in that slot
    assert Coordinator(chain, deployed.token.address).sampler() is None


def test_the_pipelined_chain_reads_storage_too(accounts: list[LocalAccount]) -> None:
    """The simulation's default chain answers eth_getStorageAt as the others do."""
    from fedledger.chain.contracts import deploy_contracts
    from fedledger.chain.pipelined import PipelinedChain

    chain = PipelinedChain()
    try:
        deployed = deploy_contracts(chain, accounts[0])
        found = Coordinator(chain, deployed.coordinator.address).sampler()
        assert found is not None and deployed.sampler is not None
        assert found.address == deployed.sampler.address
    finally:
        chain.close()
