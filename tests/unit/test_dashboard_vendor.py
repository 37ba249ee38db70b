"""The committed charting library is the one package.json pins, byte for byte.

`make vendor` copies uPlot's built file from node_modules into the package; this fails when
the pin moved and nobody re-ran it (or someone edited the minified file by hand).
"""

from __future__ import annotations

import json
from pathlib import Path

import fedledger

ROOT = Path(__file__).resolve().parents[2]
VENDOR = Path(fedledger.__file__).resolve().parent / "dashboard" / "static" / "vendor"


def test_vendored_uplot_is_the_pinned_npm_build() -> None:
    pin = json.loads((ROOT / "package.json").read_text())["devDependencies"]["uplot"]
    installed = ROOT / "node_modules" / "uplot"
    assert json.loads((installed / "package.json").read_text())["version"] == pin, "run npm ci"
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        assert (VENDOR / name).read_bytes() == (installed / "dist" / name).read_bytes(), "run make vendor"
    assert (VENDOR / "uPlot.LICENSE").read_text() == (installed / "LICENSE").read_text()


def test_no_page_loads_anything_from_another_host() -> None:
    static = Path(fedledger.__file__).resolve().parent / "dashboard"
    for path in [*static.rglob("*.html"), *static.rglob("dashboard.js"), *static.rglob("*.css")]:
        text = path.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path
