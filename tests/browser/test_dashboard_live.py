"""The dashboard over a live anvil job that advances while the page is open.

A simulation drives a real job on a pristine anvil node in a thread; the page, opened once
the job exists, must follow it round by round through the event stream without reloading,
and end with the rounds, rewards and payouts the chain's own logs hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fedledger.chain.anvil import AnvilNode
from fedledger.chain.base import dev_accounts
from fedledger.chain.coordinator import Coordinator
from fedledger.chain.rpc import RpcChain
from fedledger.dashboard.sources import LiveSource
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec

pytestmark = [pytest.mark.browser, pytest.mark.anvil]

ROUNDS = 4
SPEC = dict(
    dataset="digits", model="mlp", trainers=4, rounds=ROUNDS, local_epochs=4, partition="iid", name="live"
)


def coordinator_address() -> str:
    """The simulation deploys token, data registry, sampler, coordinator from dev:0: the fourth contract."""
    sponsor = bytes.fromhex(dev_accounts(1)[0].address[2:])
    return to_checksum_address(keccak(rlp.encode([sponsor, 3]))[12:])


def text_of(browser: webdriver.Chrome, element_id: str) -> str:
    """An element's text read in one script: the page replaces elements as updates arrive."""
    script = f"const e = document.getElementById('{element_id}'); return e ? e.textContent : ''"
    return str(browser.execute_script(script)).strip()


def test_an_open_page_follows_a_live_job_without_reloading(
    tmp_path: Path, browser: webdriver.Chrome, serve: Callable[..., Any], shot: Callable[[str], None]
) -> None:
    node = AnvilNode(accounts=10)
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            Simulation(JobSpec.from_dict(SPEC), out_dir=tmp_path / "run", chain=RpcChain(node.url)).run()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failure.append(exc)

    job = threading.Thread(target=drive, daemon=True)
    try:
        job.start()
        address, chain = coordinator_address(), RpcChain(node.url)
        deadline = time.monotonic() + 60
        while not (chain.code_at(address) and Coordinator(chain, address).job_count() >= 1):
            assert time.monotonic() < deadline and not failure, failure or "the job was never created"
            time.sleep(0.05)
        app = serve(LiveSource(node.url, address))
        browser.get(app.url + "/job/1")
        load_id = browser.execute_script("return window.fedledgerLoadId")
        first = int(text_of(browser, "finalized"))
        WebDriverWait(browser, 120, poll_frequency=0.2).until(
            lambda d: text_of(d, "outcome") == "completed" or failure
        )
        job.join(timeout=60)
        assert not failure, failure
        assert browser.execute_script("return window.fedledgerLoadId") == load_id  # never reloaded
        assert browser.execute_script("return window.fedledgerUpdates") >= 1
        assert first < ROUNDS == int(text_of(browser, "finalized"))
        coordinator = Coordinator(chain, address)
        finalized = [e for e in coordinator.events() if e.name == "RoundFinalized"]
        # one script, so that an update replacing the table cannot leave a stale element between reads
        shown = browser.execute_script(
            "return [...document.querySelectorAll('#rounds tbody tr')]"
            ".map(r => [...r.querySelectorAll('td')].map(td => td.getAttribute('data-value')))"
        )
        assert [(s[0], s[6]) for s in shown] == [
            (str(e.args["round"]), str(e.args["reward"])) for e in finalized
        ]
        shot("live-job")
        browser.get(app.url + "/job/1/organisations")
        paid = {
            str(e.args["account"]): int(e.args["reward"]) + int(e.args["fees"]) + int(e.args["stake"])
            for e in coordinator.events()
            if e.name == "Withdrawn"
        }
        cells = browser.find_elements(By.CSS_SELECTOR, "#organisations td.paid")
        assert sorted(int(c.get_attribute("data-value")) for c in cells) == sorted(paid.values())
        shot("live-organisations")
    finally:
        job.join(timeout=60)
        node.stop()
