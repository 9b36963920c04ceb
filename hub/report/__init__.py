"""`hub report`: the board pack, one self-contained HTML file from the published trends.

``build_pack`` is pure (rows in, HTML out); ``write_pack`` writes the file.
Neither reads Kafka: ``hub report`` reads the rows with
``hub.subscribe.published_rows`` and hands them in. The pack uses only
published cells (each period's latest revision, whole: ``hub.trends``), so it
holds nothing the trends topic does not: no pseudonym, no unsuppressed small
count.

The pipeline, one module a stage: ``hub.report.cells`` (published cells read
by period) -> ``hub.report.pack`` (which publication and periods) ->
``hub.report.headlines``, ``hub.report.stats`` (headline cards, trend
markers) and ``hub.report.charts`` / ``hub.report.draw`` (charts as SVG) ->
``hub.report.context`` (the template's variables) -> the Jinja2 template
``board_pack.html.j2``. docs/report.md explains every section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hub.agreement.model import Agreement
from hub.report.context import context
from hub.report.pack import Pack


@dataclass(frozen=True)
class PackSummary:
    path: Path
    publication: str
    period: str
    cells: int
    suppressed: int
    revision: int


def _render(pack: Pack, generated_at: datetime) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("hub.report", "templates"), autoescape=True, undefined=StrictUndefined
    )
    return env.get_template("board_pack.html.j2").render(context(pack, generated_at))


def build_pack(
    rows: Iterable[Mapping[str, Any]],
    agreement: Agreement,
    period_text: str,
    generated_at: datetime,
) -> str:
    """The board pack for `period_text` ('2026Q3' or '2026-09') as one HTML page. No I/O."""
    return _render(Pack(list(rows), agreement, period_text), generated_at)


def write_pack(
    rows: Iterable[Mapping[str, Any]],
    agreement: Agreement,
    period_text: str,
    out: Path,
    generated_at: datetime | None = None,
) -> PackSummary:
    """Write the pack for `period_text` from the published rows (as
    ``hub.subscribe.published_rows`` gives them) to `out`."""
    pack = Pack(list(rows), agreement, period_text)
    out.write_text(_render(pack, generated_at or datetime.now(UTC)), encoding="utf-8")
    # The same numbers as the page's header line: one Pack, read once.
    return PackSummary(
        path=out,
        publication=pack.schedule.name,
        period=pack.label(pack.start),
        cells=len(pack.period_rows()),
        suppressed=pack.suppressed_count(),
        revision=pack.revision(),
    )
