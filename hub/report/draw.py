"""Drawing the board pack's charts: matplotlib figures as inline SVG, nothing external.

No pyplot (no global figure state, no GUI backend): each chart is its own
``Figure`` saved to an SVG string. Glyphs are drawn as paths
(``svg.fonttype: path``), so the page needs no font; the XML prologue, the
namespace URIs and the metadata are stripped, so the pack holds no URL at all
(the HTML parser puts inline ``<svg>`` in the SVG namespace by itself).

A suppressed point is never drawn as a value: a line breaks there and a grey
cross sits under the axis; a suppressed bar (or part of a stacked bar) is left
out and labelled ``[c]``.
A series with no published value at all is not drawn (and has no legend
entry), so an empty chart says "no published values" instead of showing a
colour that means data. Which charts the pack has, and their colours, is
``hub.report.charts``.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.typing import RcKeyType

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


def _finish(
    figure: Figure,
    axes: Axes,
    key: str,
    title: str,
    loc: Literal["upper left", "upper right", "lower right"],
    ncols: int = 1,
) -> str:
    """Title, a legend when anything was drawn with a label, and the SVG."""
    axes.set_title(title, loc="left")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(frameon=False, fontsize=8, ncols=ncols, loc=loc)
    return _svg(figure, key, title)


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
        if percent:  # a share runs 0..100%; the room above is the legend's
            axes.set_ylim(top=1.15)
            axes.set_yticks([i / 5 for i in range(6)])
            axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        else:
            axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        return _finish(figure, axes, key, title, "upper left", min(4, len(lines) + 1))


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
        _bars(axes, ys, current, height / 2, height, current.colour)
        if previous is not None and previous.has_data:
            _bars(axes, ys, previous, -height / 2, height, PREVIOUS_COLOUR)
        for y, hidden in zip(ys, current.suppressed, strict=True):
            if hidden:
                axes.text(0, y + height / 2, " [c]", va="center", color=SUPPRESSED_COLOUR)
        if not current.has_data:
            _no_data(axes)
        axes.set_yticks(ys, labels)
        axes.set_xlim(left=0)
        if percent:
            axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        return _finish(figure, axes, key, title, "lower right")


def stacked_bar_chart(
    key: str, title: str, labels: Sequence[str], parts: Sequence[Series], percent: bool = False
) -> str:
    """Horizontal bars for one period (top first), each label's parts end to end.

    A suppressed part is left out (the parts after it start where the drawn ones end)
    and the label's stack ends in ``[c]``. The legend has a row of its own, on top.
    """
    with matplotlib.rc_context(_STYLE):
        figure, axes = _figure(0.6 + 0.28 * (max(len(labels), 3) + 1))
        ys = list(range(len(labels)))[::-1]
        ends = [0.0] * len(labels)
        for part in parts:
            drawn = [(i, v) for i, v in enumerate(part.values) if v is not None]
            if drawn:
                axes.barh(
                    [ys[i] for i, _ in drawn],
                    [v for _, v in drawn],
                    left=[ends[i] for i, _ in drawn],
                    height=0.7,
                    color=part.colour,
                    label=part.name,
                )
            for i, v in drawn:
                ends[i] += v
        for i, y in enumerate(ys):
            if any(part.suppressed[i] for part in parts):
                axes.text(ends[i], y, " [c]", va="center", color=SUPPRESSED_COLOUR)
        if not any(part.has_data for part in parts):
            _no_data(axes)
        axes.set_yticks(ys, labels)
        axes.set_ylim(-0.5, len(labels) + 0.5)
        axes.set_xlim(left=0)
        if percent:
            axes.set_xlim(right=1.0)
            axes.xaxis.set_major_formatter(PercentFormatter(1.0))
        return _finish(figure, axes, key, title, "upper right", len(parts))


def _bars(
    axes: Axes, ys: Sequence[int], series: Series, offset: float, height: float, colour: str
) -> None:
    """One series' bars, `offset` from each label's line; a None value draws nothing."""
    drawn = [(y, v) for y, v in zip(ys, series.values, strict=True) if v is not None]
    if drawn:
        axes.barh(
            [y + offset for y, _ in drawn],
            [v for _, v in drawn],
            height=height,
            color=colour,
            label=series.name,
        )
