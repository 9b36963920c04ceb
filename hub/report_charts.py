"""The board pack's charts: matplotlib figures as inline SVG, nothing external.

No pyplot (no global figure state, no GUI backend): each chart is its own
``Figure`` saved to an SVG string. Glyphs are drawn as paths
(``svg.fonttype: path``), so the page needs no font; the XML prologue, the
namespace URIs and the metadata are stripped, so the pack holds no URL at all
(the HTML parser puts inline ``<svg>`` in the SVG namespace by itself).

A suppressed point is never drawn as a value: a line breaks there and a grey
cross sits under the axis; a suppressed bar is left out and labelled ``[c]``.
A series with no published value at all is not drawn (and has no legend
entry), so an empty chart says "no published values" instead of showing a
colour that means data. Each chart's series colours (``COLOURS``) are used
nowhere else on the page: the rendering test looks for them.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.typing import RcKeyType

from hub.publish import period_label
from hub.report_stats import Cells, Reading, Status

if TYPE_CHECKING:
    from hub.agreement import Agreement
    from hub.report import Pack

#: Series colours by chart. Each chart's data is drawn in its own colours.
COLOURS: dict[str, tuple[str, ...]] = {
    "totals": ("#1b4f9c", "#e07b00"),
    "monthly": ("#2c7fb8",),
    "cells": ("#6a3d9a",),
    "risk_codes": ("#008080",),
    "multi_agency": ("#8c2d04",),
    "age": ("#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494"),
    "gap_trend": ("#880e4f",),
    "gap_agency": ("#d81b60",),
}
PREVIOUS_COLOUR = "#c8c8c8"  # the comparison period's bars: grey, not a data colour
SUPPRESSED_COLOUR = "#555555"
_STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "path",
    "text.parse_math": False,  # agency and code labels are text, never TeX
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_PROLOGUE = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_NAMESPACES = re.compile(r'\s+xmlns(:xlink)?="[^"]*"')


@dataclass(frozen=True)
class Series:
    """One line or set of bars: None where nothing may be drawn."""

    name: str
    values: Sequence[float | None]
    suppressed: Sequence[bool]
    colour: str

    @property
    def has_data(self) -> bool:
        return any(v is not None for v in self.values)


def _svg(figure: Figure, salt: str, title: str) -> str:
    out = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        figure.savefig(
            out,
            format="svg",
            metadata={"Creator": None, "Date": None, "Format": None, "Type": None},
        )
    svg = _NAMESPACES.sub("", _PROLOGUE.sub("", out.getvalue()), count=2)
    label = html.escape(title, quote=True)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def _figure(height: float) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(7.2, height), layout="constrained")
    return figure, figure.add_subplot()


def _no_data(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no published values", transform=axes.transAxes, ha="center")


def line_chart(
    key: str, title: str, x_labels: Sequence[str], lines: Sequence[Series], percent: bool = False
) -> str:
    """Lines over periods; gaps where suppressed (marked) or not published (unmarked)."""
    with matplotlib.rc_context(_STYLE):
        figure, axes = _figure(3.2)
        xs = range(len(x_labels))
        for line in lines:
            if not line.has_data:
                continue
            ys = [math.nan if v is None else v for v in line.values]
            axes.plot(
                xs, ys, color=line.colour, linewidth=2.5, marker="o", markersize=4, label=line.name
            )
        gaps = [x for x in xs if any(line.suppressed[x] for line in lines)]
        if gaps:
            axes.plot(
                gaps,
                [0.02] * len(gaps),
                linestyle="none",
                marker="x",
                markersize=7,
                color=SUPPRESSED_COLOUR,
                transform=axes.get_xaxis_transform(),
                clip_on=False,
                label="suppressed",
            )
        if not any(line.has_data for line in lines):
            _no_data(axes)
        _periods_axis(axes, x_labels)
        axes.set_ylim(bottom=0)
        axes.yaxis.set_major_locator(MaxNLocator(integer=not percent))
        if percent:
            axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_title(title, loc="left")
        if axes.get_legend_handles_labels()[0]:
            axes.legend(frameon=False, fontsize=8, ncols=min(4, len(lines) + 1), loc="upper left")
        return _svg(figure, key, title)


def _periods_axis(axes: Axes, x_labels: Sequence[str]) -> None:
    step = max(1, math.ceil(len(x_labels) / 12))
    axes.set_xticks(
        range(0, len(x_labels), step), [x_labels[i] for i in range(0, len(x_labels), step)]
    )
    axes.tick_params(axis="x", labelrotation=45)
    axes.set_xlim(-0.5, len(x_labels) - 0.5)


def bar_chart(
    key: str,
    title: str,
    labels: Sequence[str],
    current: Series,
    previous: Series | None,
    percent: bool = False,
) -> str:
    """Horizontal bars for one period (top first), the comparison period in grey."""
    with matplotlib.rc_context(_STYLE):
        figure, axes = _figure(0.6 + 0.28 * max(len(labels), 3))
        ys = list(range(len(labels)))[::-1]
        height = 0.4 if previous is not None else 0.7
        drawn = [(y, v) for y, v in zip(ys, current.values, strict=True) if v is not None]
        if drawn:
            axes.barh(
                [y + height / 2 for y, _ in drawn],
                [v for _, v in drawn],
                height=height,
                color=current.colour,
                label=current.name,
            )
        if previous is not None and previous.has_data:
            old = [(y, v) for y, v in zip(ys, previous.values, strict=True) if v is not None]
            axes.barh(
                [y - height / 2 for y, _ in old],
                [v for _, v in old],
                height=height,
                color=PREVIOUS_COLOUR,
                label=previous.name,
            )
        for y, hidden in zip(ys, current.suppressed, strict=True):
            if hidden:
                axes.text(0, y + height / 2, " [c]", va="center", color=SUPPRESSED_COLOUR)
        if not current.has_data:
            _no_data(axes)
        axes.set_yticks(ys, labels)
        axes.set_xlim(left=0)
        if percent:
            axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        axes.set_title(title, loc="left")
        if axes.get_legend_handles_labels()[0]:
            axes.legend(frameon=False, fontsize=8, loc="lower right")
        return _svg(figure, key, title)


# -- the pack's charts --


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

    def gaps(start: date) -> list[Reading]:
        return [pack.cells.agency_gap(start, a) for a in agencies]

    totals = [
        _series("Events", pack.series("events", "total", "all"), COLOURS["totals"][0]),
        _series("Children", pack.series("children", "total", "all"), COLOURS["totals"][1]),
    ]
    multi = pack.series("children", "known_to_agencies", "2+")
    gap_line = [pack.cells.gap(s).share for s in pack.starts]
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
                "Referrals with the online component not assessed",
                labels,
                [_series("Share not assessed", gap_line, COLOURS["gap_trend"][0])],
                percent=True,
            ),
        ),
        (
            "Data gap by agency",
            bar_chart(
                "gap_agency",
                "Share of referrals not assessed, by agency",
                agencies,
                _series(now, gaps(pack.start), COLOURS["gap_agency"][0]),
                _series(before, gaps(pack.previous), PREVIOUS_COLOUR),
                percent=True,
            ),
        ),
    ]


def _monthly(pack: Pack) -> list[tuple[str, str]]:
    """A quarterly pack's monthly detail: events per month, 24 months to the quarter's end."""
    if pack.kind != "quarter" or pack.monthly is None:
        return []
    months = [_months_after(pack.start, 2 - i) for i in reversed(range(24))]
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


def _months_after(start: date, months: int) -> date:
    index = start.year * 12 + start.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


# -- labels --

_TYPE_LABELS = {"CAMHS": "CAMHS", "CHILDRENS_SOCIAL_CARE": "Children's social care"}


def type_label(agency_type: str) -> str:
    return _TYPE_LABELS.get(agency_type) or agency_type.replace("_", " ").capitalize()


def cell_label(cell: str) -> str:
    """CONTACT_SEXUAL -> 'Contact: sexual'; CROSS_PRIVACY -> 'Cross-cutting: privacy'."""
    c, _, harm = cell.partition("_")
    if not harm:
        return "Not mapped to a 4Cs cell" if cell == "UNMAPPED" else cell
    return f"{'Cross-cutting' if c == 'CROSS' else c.capitalize()}: {harm.lower()}"


def code_label(code: str, agreement: Agreement) -> str:
    """A local code's label from the agreement, else the code in words."""
    labels = {c.code: c.label for c in agreement.local_risk_codes if c.label}
    words = code.replace("_", " ").capitalize().replace("Csam", "CSAM").replace(" u18", " under 18")
    return labels.get(code) or words
