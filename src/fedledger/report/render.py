"""Writing the report: JSON as built, HTML from a Jinja template, PDF from WeasyPrint.

The PDF is the HTML laid out for A4 by WeasyPrint (a real CSS paged-media renderer, no
browser). A 100-round, 100-organisation job logs ~20,000 events: laid out in full that is
hundreds of pages and minutes of layout, so past `pdf_event_limit` events the PDF lists the
risk and change events in full and counts the routine ones per kind, pointing to the JSON
and HTML reports, which always hold every event.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from fedledger.errors import ReportError

Format = Literal["html", "pdf", "json"]


@dataclass(frozen=True)
class RenderOptions:
    """How a report is rendered; `pdf_event_limit` = 0 lists every event in the PDF too."""

    format: Format = "html"
    pdf_event_limit: int = 2_000
    pdf_finding_limit: int = 200


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("fedledger.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tokens"] = _tokens
    env.filters["num"] = _num
    return env


def _tokens(units: Any) -> str:
    """Token units (18 decimals) as tokens: payouts are read in tokens, stated in units in JSON."""
    if units is None:
        return "—"
    return f"{int(units) / 10**18:,.4f}"


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def to_html(
    report: dict[str, Any], *, for_pdf: bool = False, event_limit: int = 0, finding_limit: int = 0
) -> str:
    """The report as one self-contained HTML page (inline CSS, nothing fetched).

    `finding_limit` caps the audit's findings the same way for the PDF: a failed audit of a
    large job (every blob of a lost store missing) lists tens of thousands, and WeasyPrint
    took 11 minutes to lay out 35,707 of them.
    """
    log = report["event_log"]
    shown, summary = log, {}
    if event_limit and len(log) > event_limit:
        shown = [e for e in log if e["purpose"] in ("risk", "change")]
        summary = dict(Counter(e["event"] for e in log if e["purpose"] not in ("risk", "change")))
    findings = report["audit"]["findings"]
    findings_summary: dict[str, int] = {}
    if finding_limit and len(findings) > finding_limit:
        findings_summary = dict(Counter(f"{f['severity']} {f['check']}" for f in findings[finding_limit:]))
        findings = findings[:finding_limit]
    template = _environment().get_template("report.html.j2")
    return template.render(
        r=report,
        for_pdf=for_pdf,
        events=shown,
        event_summary=summary,
        findings=findings,
        findings_summary=findings_summary,
        event_lines=_event_lines(shown) if for_pdf else "",
        finding_lines=_finding_lines(findings) if for_pdf else "",
    )


# The PDF prints its long listings as monospace lines, not table rows: WeasyPrint lays out a
# table row in ~13 ms (500 event rows took 6.5 s of a 10 s budget), the same text as lines in
# a sixth of that.


def _blank(x: Any) -> str:
    return "" if x is None else str(x)


def _event_lines(events: list[dict[str, Any]]) -> str:
    """Two lines an event: when, block, what, why, round, who; then its transaction and details."""
    out = []
    for e in events:
        out.append(
            f"{e['time']}  block {e['block']:>9}  {e['event']:<24} {e['purpose']:<10} "
            f"round {_blank(e['round']):>4}  {_blank(e['organisation'])}"
        )
        out.append(f"    tx {e['tx_hash']} · log {e['log_index']}  {_blank(e['details'])}")
    return "\n".join(out)


def _finding_lines(findings: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{f['severity']:<7} {f['check']:<16} round {_blank(f['round']):>4}  {_blank(f['organisation'])}  "
        f"{f['artefact']}: {f['message']}"
        for f in findings
    )


def to_pdf(report: dict[str, Any], *, event_limit: int, finding_limit: int = 200) -> bytes:
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # OSError: pango missing (apt-get install libpango-1.0-0)
        raise ReportError(
            f"PDF needs WeasyPrint and Debian's pango (make report-deps): {str(exc).splitlines()[0]}"
        ) from None
    html = to_html(report, for_pdf=True, event_limit=event_limit, finding_limit=finding_limit)
    pdf = HTML(string=html).write_pdf()
    assert pdf is not None  # write_pdf without a target returns the bytes
    return bytes(pdf)


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def render(report: dict[str, Any], options: RenderOptions) -> bytes:
    if options.format == "json":
        return to_json(report).encode()
    if options.format == "pdf":
        return to_pdf(report, event_limit=options.pdf_event_limit, finding_limit=options.pdf_finding_limit)
    return to_html(report).encode()


def write(report: dict[str, Any], options: RenderOptions, out: Path) -> None:
    data = render(report, options)
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise ReportError(f"cannot write the report {out}: {exc.strerror or exc}") from None
