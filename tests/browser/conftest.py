"""Real parts for the dashboard's browser tests: Debian's headless Chromium driven by Selenium,
and the dashboard's own app served by uvicorn on a free port (no fakes, no mocked pages).

`make test` installs chromium and chromium-driver (the Makefile's `chromium` target); a
machine without them fails these tests with that instruction rather than skipping silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from fedledger.dashboard.app import DashboardConfig, create_app
from fedledger.dashboard.sources import Source

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not Path(driver_path).exists():
        pytest.fail(
            "chromium-driver not installed: run `make test` (or apt-get install chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


class Served:
    """The dashboard app on 127.0.0.1:`port` in a thread, stopped by `stop()`."""

    def __init__(self, source: Source, poll_seconds: float = 0.2) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        app = create_app(source, DashboardConfig(poll_seconds=poll_seconds))
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def serve() -> Iterator[Callable[[Source], Served]]:
    """Starts the app over a source; every server a test started is stopped after it."""
    started: list[Served] = []

    def start(source: Source) -> Served:
        started.append(Served(source))
        return started[-1]

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def shot(browser: webdriver.Chrome, tmp_path: Path) -> Callable[[str], None]:
    """Screenshots the page and fails if it is blank (a page of tables and curves has many grey
    levels and a clear spread). With FEDLEDGER_SCREENSHOTS=DIR the PNGs land in DIR (docs/img)."""
    where = Path(os.environ.get("FEDLEDGER_SCREENSHOTS") or tmp_path)

    def take(name: str) -> None:
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"dashboard-{name}.png"
        browser.save_screenshot(str(path))
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
        assert pixels.std() > 10, f"{path} looks blank (pixel std {pixels.std():.1f})"
        assert len(np.unique(pixels.round())) > 20, f"{path} has too few grey levels to be a page"

    return take
