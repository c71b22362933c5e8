"""The gate's HTML report: one self-contained page per gate run.

Why not GX Data Docs: Data Docs render each expectation's ``partial_unexpected_list`` verbatim,
and for the "is a hash" expectations those values are exactly the raw CPF/CNPJ or name the gate
exists to catch; the report must not leak them. It also needs the gate's own vocabulary
(critical or warning, why it matters, rows checked), which Data Docs do not have.
"""

from __future__ import annotations

import html
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict on one table, in words."""

    table: str
    expectation: str  # e.g. "expect_column_values_to_be_unique(id_solicitacao)"
    critical: bool
    passed: bool
    observed: str  # what was seen, e.g. "3 rows share a duplicated value (of 100)"
    why: str  # the business reason

    def message(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return f"{self.table}: {self.expectation} {verdict}: {self.observed}"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { margin-bottom: .2rem; } .meta { color: #666; margin-top: 0; }
.verdict { display: inline-block; padding: .3rem .8rem; border-radius: 4px; color: #fff;
           font-weight: bold; }
.PASSED { background: #2e7d32; } .FAILED { background: #c62828; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0 2rem; font-size: .9rem; }
th, td { border: 1px solid #ddd; padding: .35rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
tr.fail-critical td { background: #fdecea; } tr.fail-warning td { background: #fff8e1; }
code { font-size: .85rem; }
"""


def write_report(
    directory: Path,
    *,
    layer: str,
    schema: str,
    outcomes: Sequence[ExpectationOutcome],
    checked_rows: dict[str, int],
    file_stem: str,
    now: datetime | None = None,
) -> Path:
    """Write ``<file_stem>-<UTC timestamp>.html`` (and a ``<file_stem>-latest.html`` copy) into
    ``directory``; return the timestamped path."""
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{file_stem}-{now:%Y%m%dT%H%M%S%fZ}.html"
    path.write_text(render_report(layer, schema, outcomes, checked_rows, now), encoding="utf-8")
    shutil.copyfile(path, directory / f"{file_stem}-latest.html")
    log.info("quality report: %s", path)
    return path


def render_report(
    layer: str,
    schema: str,
    outcomes: Sequence[ExpectationOutcome],
    checked_rows: dict[str, int],
    now: datetime,
) -> str:
    """The report as one HTML page: verdict, rows per table, then every expectation."""
    critical_failures = sum(1 for o in outcomes if o.critical and not o.passed)
    warnings = sum(1 for o in outcomes if not o.critical and not o.passed)
    verdict = "FAILED" if critical_failures else "PASSED"
    e = html.escape
    rows_table = "".join(
        f"<tr><td>{e(table)}</td><td>{count:,}</td></tr>" for table, count in checked_rows.items()
    )
    body = []
    for table in dict.fromkeys(o.table for o in outcomes):
        body.append(f"<h2>{e(table)}</h2>")
        body.append(
            "<table><tr><th>expectation</th><th>severity</th><th>result</th>"
            "<th>observed</th><th>why it matters</th></tr>"
        )
        for o in (o for o in outcomes if o.table == table):
            severity = "critical" if o.critical else "warning"
            css = "" if o.passed else f"fail-{severity}"
            body.append(
                f'<tr class="{css}"><td><code>{e(o.expectation)}</code></td><td>{severity}</td>'
                f"<td>{'passed' if o.passed else 'FAILED'}</td><td>{e(o.observed)}</td>"
                f"<td>{e(o.why)}</td></tr>"
            )
        body.append("</table>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Safra quality gate: {e(layer)} {verdict}</title><style>{_STYLE}</style></head>
<body>
<h1>Quality gate: {e(layer)} <span class="verdict {verdict}">{verdict}</span></h1>
<p class="meta">{e(schema)} &middot; {now:%Y-%m-%d %H:%M:%S} UTC &middot;
{len(outcomes)} expectations, {critical_failures} critical failure(s), {warnings} warning(s)</p>
<h2>Rows checked</h2>
<table><tr><th>table</th><th>rows</th></tr>{rows_table}</table>
{"".join(body)}
</body></html>
"""
