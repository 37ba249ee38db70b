"""What `fedledger audit` prints: --quiet drops the summary but never a finding."""

from __future__ import annotations

import io

from rich.console import Console

from fedledger.audit.report import AuditReport
from fedledger.cli.audit import show


def _printed(report: AuditReport, *, quiet: bool) -> str:
    buf = io.StringIO()
    show(report, Console(file=buf, width=200, color_system=None), quiet=quiet)
    return buf.getvalue()


def test_quiet_still_prints_warnings_and_errors() -> None:
    report = AuditReport(job_id=1, provenance="run directory")
    report.record("passed", "lineage")
    report.record("warning", "readers", "round 2 updates", "sealed to the job's readers", round=2)
    report.record("error", "payouts", "org-03", "paid 5 more than earned")
    quiet = _printed(report, quiet=True)
    assert "WARNING [readers] round 2, round 2 updates: sealed to the job's readers" in quiet
    assert "ERROR [payouts] org-03: paid 5 more than earned" in quiet


def test_quiet_drops_the_summary_that_a_full_audit_prints() -> None:
    report = AuditReport(job_id=1, provenance="run directory")
    report.record("passed", "lineage")
    report.not_covered = ["run.log"]
    assert "not covered by any check: run.log" in _printed(report, quiet=False)
    assert "not covered" not in _printed(report, quiet=True)
