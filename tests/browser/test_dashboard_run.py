"""The dashboard over a finished run, in Chromium: every number on the page is the run's.

The expected values are read here straight from the run's own files (chain.json's events,
metrics.json), not through the dashboard's ledger, so a mistake there cannot hide itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fedledger.dashboard.sources import RunDirSource
from fedledger.sim.simulate import Simulation
from fedledger.spec import JobSpec

pytestmark = pytest.mark.browser

SPEC = dict(dataset="digits", model="mlp", trainers=4, rounds=3, local_epochs=2, partition="iid", name="dash")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dash") / "run"
    Simulation(JobSpec.from_dict(SPEC), out_dir=out).run()
    return out


def events(run: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in json.loads((run / "chain.json").read_text())["events"] if e["name"] == name]


def cells(driver: webdriver.Chrome, table: str, column: int) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return [r.find_elements(By.TAG_NAME, "td")[column].get_attribute("data-value") or "" for r in rows]


def test_job_page_shows_the_runs_rounds_rewards_and_accuracies(
    run_dir: Path, browser: webdriver.Chrome, serve: Callable[..., Any], shot: Callable[[str], None]
) -> None:
    app = serve(RunDirSource(run_dir))
    browser.get(app.url + "/")
    assert browser.find_element(By.CSS_SELECTOR, "#jobs tbody td").text == "job 1"
    shot("jobs")
    browser.get(app.url + "/job/1")
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#rounds tbody tr"))
    finalized = events(run_dir, "RoundFinalized")
    assert cells(browser, "rounds", 0) == [str(e["args"]["round"]) for e in finalized] == ["1", "2", "3"]
    assert cells(browser, "rounds", 6) == [str(e["args"]["reward"]) for e in finalized]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [float(v) for v in cells(browser, "rounds", 7)] == [m["test_accuracy"] for m in metrics]
    shown = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#rounds td.acc")]
    assert shown == [f"{100 * m['test_accuracy']:.2f}%" for m in metrics]
    assert browser.find_element(By.ID, "outcome").text == "completed"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#acc canvas, #loss canvas")) == 2  # both curves drawn
    shot("job")


def test_organisations_page_shows_each_payout_as_withdrawn_on_chain(
    run_dir: Path, browser: webdriver.Chrome, serve: Callable[..., Any], shot: Callable[[str], None]
) -> None:
    app = serve(RunDirSource(run_dir))
    browser.get(app.url + "/job/1/organisations")
    names = json.loads((run_dir / "chain.json").read_text())["participants"]
    paid = {
        names[e["args"]["account"]]: e["args"]["reward"] + e["args"]["fees"] + e["args"]["stake"]
        for e in events(run_dir, "Withdrawn")
    }
    rows = browser.find_elements(By.CSS_SELECTOR, "#organisations tbody tr")
    shown = {
        r.get_attribute("data-org"): int(
            r.find_element(By.CSS_SELECTOR, "td.paid").get_attribute("data-value")
        )
        for r in rows
    }
    assert shown == paid and len(shown) == 4
    shot("organisations")


def test_privacy_and_lineage_pages_draw_the_job(
    run_dir: Path, browser: webdriver.Chrome, serve: Callable[..., Any], shot: Callable[[str], None]
) -> None:
    app = serve(RunDirSource(run_dir))
    browser.get(app.url + "/job/1/privacy")
    assert browser.find_element(By.ID, "epsilon").text == "0.0000"
    shot("privacy")
    browser.get(app.url + "/job/1/lineage")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#lineage g.version")) == 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "#lineage g.org")) == 4
    assert len(browser.find_elements(By.CSS_SELECTOR, "#lineage line")) == 12 + 4  # 12 updates, 4 data edges
    shot("lineage")


def test_the_audit_button_runs_the_audit_and_shows_each_checks_verdict(
    run_dir: Path, browser: webdriver.Chrome, serve: Callable[..., Any], shot: Callable[[str], None]
) -> None:
    app = serve(RunDirSource(run_dir))
    browser.get(app.url + "/job/1/audit")
    browser.find_element(By.ID, "run-audit").click()
    verdict = WebDriverWait(browser, 60).until(lambda d: d.find_element(By.ID, "audit-verdict"))
    assert verdict.text == "AUDIT PASSED"
    checks = {
        r.get_attribute("data-check")
        for r in browser.find_elements(By.CSS_SELECTOR, "#checks tr[data-check]")
    }
    assert {"aggregate", "payout", "stake", "update", "spec"} <= checks
    shot("audit")


def test_a_page_that_is_not_there_is_a_404(run_dir: Path, serve: Callable[..., Any]) -> None:
    import urllib.error
    import urllib.request

    app = serve(RunDirSource(run_dir))
    for path in ("/job/1/rounds", "/job/2"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(app.url + path, timeout=10)
        assert info.value.code == 404 and "Not found" in info.value.read().decode()
    with urllib.request.urlopen(app.url + "/job/1", timeout=10) as ok:
        assert ok.status == 200


def test_static_links_do_not_echo_the_host_header(run_dir: Path, serve: Callable[..., Any]) -> None:
    """Behind a proxy (or for a forged Host) the page must still load its own scripts and styles."""
    import urllib.request

    app = serve(RunDirSource(run_dir))
    req = urllib.request.Request(app.url + "/job/1", headers={"Host": "attacker.example"})
    with urllib.request.urlopen(req, timeout=10) as page:
        html = page.read().decode()
    assert "attacker.example" not in html
    assert 'src="/static/dashboard.js"' in html and 'href="/static/dashboard.css"' in html
