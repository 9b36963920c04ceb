"""The board pack's charts: which charts, in which order, from which cells.

The drawing itself (inline SVG, suppressed points marked, never drawn as a
value) is ``hub.report.draw``. Each chart's series colours (``COLOURS``) are
used nowhere else on the page: the rendering test looks for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from hub.periods import add_months, period_label
from hub.report.cells import NOT_ASSESSED, NOT_RECORDED, Cells, Reading, Status
from hub.report.draw import PREVIOUS_COLOUR, Series, bar_chart, line_chart, stacked_bar_chart
from hub.report.pack import Pack, cell_label, code_label

#: Series colours by chart. Each chart's data is drawn in its own colours; the data gap's
#: two parts, not assessed then not recorded, in the same order in both its charts.
COLOURS: dict[str, tuple[str, ...]] = {
    "totals": ("#1b4f9c", "#e07b00"),
    "monthly": ("#2c7fb8",),
    "cells": ("#6a3d9a",),
    "risk_codes": ("#008080",),
    "multi_agency": ("#8c2d04",),
    "age": ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494"),
    "gap_trend": ("#880e4f", "#9c6b00"),
    "gap_agency": ("#d81b60", "#f0b400"),
}


def _series(name: str, readings: Sequence[Reading], colour: str) -> Series:
    return Series(
        name,
        [r.value if r.ok else None for r in readings],
        [r.status is Status.SUPPRESSED for r in readings],
        colour,
    )


def pack_charts(pack: Pack) -> list[tuple[str, str]]:
    """(caption, SVG) of every chart in the pack, in page order."""
    labels = [pack.label(s) for s in pack.starts]
    now, before = pack.label(pack.start), pack.label(pack.previous)
    bands, agencies = pack.age_bands(), [p.id for p in pack.agreement.partners]
    cells, codes = pack.cell_values(), pack.top_codes()
    age = COLOURS["age"]

    def bars(key: str, title: str, dimension: str, values: Sequence[str], names: list[str]) -> str:
        def at(start: date) -> list[Reading]:
            return [pack.cells.reading(start, "events", dimension, v) for v in values]

        current = _series(now, at(pack.start), COLOURS[key][0])
        return bar_chart(
            key, title, names, current, _series(before, at(pack.previous), PREVIOUS_COLOUR)
        )

    def gaps(measure: str) -> list[Reading]:
        return [pack.cells.agency_gap(pack.start, a, measure) for a in agencies]

    totals = [
        _series("Events", pack.series("events", "total", "all"), COLOURS["totals"][0]),
        _series("Children", pack.series("children", "total", "all"), COLOURS["totals"][1]),
    ]
    multi = pack.series("children", "known_to_agencies", "2+")
    gap_line = [pack.cells.gap(s).share for s in pack.starts]
    unrecorded_line = [pack.cells.gap(s, NOT_RECORDED).share for s in pack.starts]
    trend_colours, agency_colours = COLOURS["gap_trend"], COLOURS["gap_agency"]
    return [
        ("Events and children", line_chart("totals", "Events and children", labels, totals)),
        *_monthly(pack),
        (
            "Events by 4Cs cell",
            bars(
                "cells",
                f"Events by 4Cs cell, {now}",
                "cell_4c",
                cells,
                [cell_label(c) for c in cells],
            ),
        ),
        (
            "Most common risk codes",
            bars(
                "risk_codes",
                f"Most common risk codes, {now}",
                "risk_code",
                codes,
                [code_label(c, pack.agreement) for c in codes],
            ),
        ),
        (
            "Children known to two or more agencies",
            line_chart(
                "multi_agency",
                "Children known to two or more agencies",
                labels,
                [_series("Children known to 2+ agencies", multi, COLOURS["multi_agency"][0])],
            ),
        ),
        (
            "Age profile of children",
            line_chart(
                "age",
                "Children by age band",
                labels,
                [
                    _series(band, pack.series("children", "age_band", band), age[i % len(age)])
                    for i, band in enumerate(bands)
                ],
            ),
        ),
        (
            "Data gap over time",
            line_chart(
                "gap_trend",
                "Referrals with the online component not assessed, or not recorded",
                labels,
                [
                    _series("Share not assessed", gap_line, trend_colours[0]),
                    _series("Share not recorded", unrecorded_line, trend_colours[1]),
                ],
                percent=True,
            ),
        ),
        (
            "Data gap by agency",
            stacked_bar_chart(
                "gap_agency",
                f"Share of referrals not assessed, or not recorded, by agency, {now}",
                agencies,
                [
                    _series("Not assessed", gaps(NOT_ASSESSED), agency_colours[0]),
                    _series("Not recorded (no such field)", gaps(NOT_RECORDED), agency_colours[1]),
                ],
                percent=True,
            ),
        ),
    ]


def _monthly(pack: Pack) -> list[tuple[str, str]]:
    """A quarterly pack's monthly detail: events per month, 24 months to the quarter's end."""
    if pack.kind != "quarter" or pack.monthly is None:
        return []
    months = [add_months(pack.start, 2 - i) for i in reversed(range(24))]
    cells = Cells(pack.rows, pack.monthly.name)
    if not any(cells.published(m) for m in months):
        return []
    readings = [cells.reading(m, "events", "total", "all") for m in months]
    title = f"Events per month ({pack.monthly.name} publication)"
    svg = line_chart(
        "monthly",
        title,
        [period_label("month", (m, m)) for m in months],
        [_series("Events", readings, COLOURS["monthly"][0])],
    )
    return [("Events per month", svg)]
