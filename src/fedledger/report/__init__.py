"""Compliance reports of a federated job, built from the audited chain and the store alone.

`fedledger report` (cli/report.py) opens and audits a job (`inputs`), builds one structure
(`build`), and renders it as HTML, PDF or JSON (`render`). Above the audit in the layer map:
it runs the audit and reports on it; nothing below imports it.
"""
