"""`fedledger dashboard`: a local web app over a run directory or a live coordinator.

Layer 8, beside sim/: it reads what the audit reads (audit/ is below it) and is started by
the CLI (above it). The charting library, uPlot, is pinned in package.json and its built
file is committed under static/vendor/ with its licence: a wheel must carry it because the
users' machines are offline and pip never runs npm; `make vendor` refreshes the copy from
node_modules and tests/unit/test_dashboard_vendor.py fails when the two differ.
"""
