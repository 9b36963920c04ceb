"""The board pack's headline cards and how a reading is printed.

Each card compares the period with the previous one and the same period last
year, and carries the recent-trend marker (``hub.report.stats``). A
suppressed reading prints as ``[c]``, never 0, and a comparison with one says
it cannot be made.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

from hub.agreement.model import HeadlineKey
from hub.report.cells import NOT_RECORDED, Reading, Status
from hub.report.pack import Pack
from hub.report.stats import Polarity, Trend, count_trend, proportion_trend

#: Colour of each headline's trend marker. A rise in recorded harm can mean better
#: identification as much as more harm, so counts carry no judgement; the data gap
#: (referrals whose online component was not assessed) should fall. Referrals whose
#: agency's system does not record the online component are not in it: the card's
#: note names those agencies (``gap_note``).
POLARITY: Mapping[HeadlineKey, Polarity] = {
    "events": Polarity.NO_JUDGEMENT,
    "children": Polarity.NO_JUDGEMENT,
    "multi_agency": Polarity.NO_JUDGEMENT,
    "data_gap": Polarity.LOWER_IS_BETTER,
}


@dataclass(frozen=True)
class Headline:
    title: str
    value: str
    previous: str
    previous_change: str
    last_year: str
    last_year_change: str
    trend: str
    judgement: str
    note: str


def show_count(reading: Reading) -> str:
    """'1,234'; '[c]' when suppressed (never 0); 'not published'; '-' when empty."""
    if reading.ok and reading.value is not None:
        return f"{reading.value:,.0f}"
    return {Status.SUPPRESSED: "[c]", Status.MISSING: "not published"}.get(reading.status, "-")


def show_share(reading: Reading) -> str:
    if reading.ok and reading.value is not None:
        return f"{reading.value:.1%}"
    return show_count(reading)


def change(current: Reading, earlier: Reading, share: bool = False) -> str:
    """'up 15 (+14%)', 'down 2.5 percentage points', 'no change', or why not comparable."""
    if current.value is None or earlier.value is None or not (current.ok and earlier.ok):
        hidden = Status.SUPPRESSED in (current.status, earlier.status)
        return "cannot be compared (suppressed)" if hidden else "cannot be compared"
    if share:  # the difference of the percentages as shown, so the page adds up
        points = float(f"{current.value * 100:.1f}") - float(f"{earlier.value * 100:.1f}")
        word = "up" if points > 0 else "down"
        return f"{word} {abs(points):.1f} percentage points" if abs(points) >= 0.05 else "no change"
    difference = current.value - earlier.value
    if not difference:
        return "no change"
    word = "up" if difference > 0 else "down"
    relative = f" ({difference / earlier.value:+.0%})" if earlier.value else ""
    return f"{word} {abs(difference):,.0f}{relative}"


def polarity_of(pack: Pack, key: HeadlineKey) -> Polarity:
    """The agreement's polarity for a headline (its `report.polarity`), else the default."""
    chosen = pack.agreement.report.polarity.get(key)
    return POLARITY[key] if chosen is None else Polarity(chosen)


def headline(
    pack: Pack,
    key: HeadlineKey,
    title: str,
    at: Callable[[date], Reading],
    trend: Trend,
    note: str = "",
) -> Headline:
    share = key == "data_gap"
    show = show_share if share else show_count
    now, before, year_ago = at(pack.start), at(pack.previous), at(pack.last_year)
    polarity = polarity_of(pack, key)
    return Headline(
        title,
        show(now),
        show(before),
        change(now, before, share),
        show(year_ago),
        change(now, year_ago, share),
        trend.describe(polarity),
        trend.judgement(polarity),
        note,
    )


def count_headline(
    pack: Pack, key: HeadlineKey, title: str, cell: tuple[str, str, str]
) -> Headline:
    trend = count_trend([r.count() for r in pack.series(*cell)], pack.agreement.disclosure.round_to)
    return headline(pack, key, title, lambda s: pack.cells.reading(s, *cell), trend)


def gap_note(pack: Pack, left_out: int) -> str:
    """The data-gap card's note: which agencies' systems do not record the online
    component (their referrals are not counted as not assessed), then how many agencies
    the share leaves out because a cell is suppressed."""
    shown, hidden = pack.cells.not_recording(pack.start)
    notes = []
    if shown:
        share = pack.cells.gap(pack.start, NOT_RECORDED).share
        part = f": {show_share(share)} of referrals," if share.ok else ","
        notes.append(
            f"The online component is not recorded by the systems of {', '.join(shown)}"
            f"{part} counted apart from those not assessed."
        )
    if hidden:
        notes.append(f"Referrals not recorded: the count is suppressed for {', '.join(hidden)}.")
    if left_out:
        notes.append(f"{left_out} agencies left out this period: a suppressed cell")
    return " ".join(notes)


def headlines(pack: Pack) -> list[Headline]:
    gaps = [pack.cells.gap(s) for s in pack.starts]
    trend = proportion_trend(
        [g.count if g.share.ok else None for g in gaps],
        [g.referrals if g.share.ok else None for g in gaps],
    )
    note = gap_note(pack, gaps[-1].left_out)
    return [
        count_headline(
            pack, "events", "Events with an online component", ("events", "total", "all")
        ),
        count_headline(pack, "children", "Children", ("children", "total", "all")),
        count_headline(
            pack,
            "multi_agency",
            "Children known to two or more agencies",
            ("children", "known_to_agencies", "2+"),
        ),
        headline(
            pack,
            "data_gap",
            "Referrals with the online component not assessed",
            lambda s: pack.cells.gap(s).share,
            trend,
            note,
        ),
    ]
