"""Disclosure control across releases: what a reader can put side by side.

``hub.disclosure`` protects each breakdown of one release on its own. A reader of
the trends topic also combines releases: the months of a quarter against the
quarter, a period's revision against its earlier revisions, events against
children. This module writes down every linear relation such a reader knows
(the *reader model* below), finds by linear programming (HiGHS) the range each
hidden cell can still take given everything published, and, before a release is
sent, suppresses more of its cells until no hidden cell anywhere is confined to
``1..threshold`` or to one small value.

Pure: no Kafka, no I/O.

The reader model
----------------
* **Unknowns.** One true count per cell of a period: (start, end, measure,
  dimension, value). Two publications releasing the same dates describe the
  same cells.
* **Revisions.** A period's revisions are read in order (revision, then
  publication). A cell keeps its unknown from one revision to the next while
  either of the two hides it or both publish the same count: the reader assumes
  it unchanged (the differencing attack). Where both publish different counts,
  or what the later one says contradicts the earlier (a published 0, then
  hidden), a new unknown starts. The latest unknown of each cell is the one linked across
  periods.
* **Published counts.** A published ``c`` bounds its unknown to the counts the
  rule publishes as ``c`` (``DisclosureRule.possible_true_counts``): ``0`` is an
  exact 0, ``10`` with the default rule is 8..12. A hidden cell is at least 1
  (zeros are published), or at least 0 where its whole breakdown is hidden.
* **One release.** An additive breakdown of ``events`` or ``children``
  (``ADDITIVE``) sums to the measure's ``total`` cell; every other cell of the
  measure is at most its total. ``children`` of a (dimension, value) are at most
  the ``events`` of it; ``pseudonyms`` lie between ``children`` and ``events``
  totals; referrals whose online component was not assessed, and those where it
  is not recorded, are together at most the agency's referrals.
* **Periods.** A period exactly covered by other released periods (a quarter by
  its months): for measures that count events, each of its cells is the sum of
  the same cell of those periods; for distinct counts (children, pseudonyms),
  at least the largest and at most the sum.
* **Inconsistency.** When the relations admit no table at all (the truth moved
  between releases), the reader keeps of the earlier revisions only their
  windows on the cells assumed unchanged, not their sums; then gives up the
  fewest of those windows that contradict the rest; then the revision
  assumption; then the links between periods; and reads on with what is left.

A hidden cell is *exposed* when its range under this model lies within
``1..threshold`` (a single value there included). A hidden cell pinned to 0 is
not: 0 is published wherever it is the count.

Protecting a release (``secure_release``): the candidate's cells (each
breakdown already protected by ``hub.disclosure``) are added to what is
published. While some hidden cell is exposed that was not exposed before the
candidate, the candidate suppresses one more of its published non-zero cells
for each exposed cell: the same cell (same dimension and value) first, then the
smallest of the same breakdown, then the smallest of the same measure. When
none is left, the breakdowns involved are withheld in the candidate (every cell
hidden, zeros included): earlier revisions' cells stay on the topic, and the
result says which breakdowns were withheld.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

import highspy
import numpy as np

from hub.disclosure import DisclosureRule
from hub.trends import (
    ALL,
    CHILDREN,
    EVENTS,
    PSEUDONYMS,
    REFERRALS,
    REFERRALS_NOT_ASSESSED,
    REFERRALS_NOT_RECORDED,
    SUBJECT_BASIS,
    TOTAL,
)

#: (measure, dimension, value)
CellKey = tuple[str, str, str]
Span = tuple[date, date]

_SINGLE = ("age_band", "sex", "area", "threshold_level", "role", "outcome")
#: Breakdowns whose cells partition the measure's total (``streams.aggregate.ADDITIVE``).
ADDITIVE: frozenset[tuple[str, str]] = frozenset(
    {(EVENTS, d) for d in (*_SINGLE, "agency_type", SUBJECT_BASIS)}
    | {(CHILDREN, d) for d in (*_SINGLE, "known_to_agencies")}
)
#: Measures that count events: a period's count is the sum of its parts'.
TIME_ADDITIVE = frozenset({EVENTS, REFERRALS, REFERRALS_NOT_ASSESSED, REFERRALS_NOT_RECORDED})
#: Measures that count distinct people: a period's count lies between the largest
#: of its parts' and their sum.
DISTINCT = frozenset({CHILDREN, PSEUDONYMS})

_INF = highspy.kHighsInf


@dataclass(frozen=True)
class Release:
    """One revision of one period of one publication: cell -> count (None: hidden)."""

    publication: str
    start: date
    end: date
    revision: int
    cells: Mapping[CellKey, int | None]

    @property
    def span(self) -> Span:
        return (self.start, self.end)


@dataclass(frozen=True)
class Exposure:
    """A hidden cell a reader can confine: ``low..high`` within 1..threshold, or one value."""

    start: date
    end: date
    cell: CellKey
    low: int
    high: int

    def __str__(self) -> str:
        measure, dimension, value = self.cell
        return (
            f"{measure} by {dimension} {value!r} in {self.start}..{self.end}:"
            f" {self.low}..{self.high}"
        )


@dataclass
class Secured:
    """What ``secure_release`` did to a candidate."""

    release: Release
    #: Cells the candidate hides beyond its breakdowns' own protection.
    linked_suppressions: list[CellKey] = field(default_factory=list)
    #: (measure, dimension) breakdowns withheld in the candidate.
    withheld: list[tuple[str, str]] = field(default_factory=list)
    #: Exposures that already existed before the candidate (nothing it can do).
    earlier: list[Exposure] = field(default_factory=list)


class _Infeasible(Exception):
    """The reader model admits no table: some assumption is contradicted."""


@dataclass
class _Model:
    """The linear relations a reader knows, over the unknowns of the given releases.

    Column bounds are what the last release to mention each unknown says of it;
    ``borrowed`` are the windows earlier revisions add to an unknown a later one hides
    (kept apart so that contradicted ones can be found and dropped).
    """

    names: list[tuple[Span, CellKey]] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    shown: list[bool] = field(default_factory=list)  # published in some release
    rows: list[tuple[float, float, list[int], list[float]]] = field(default_factory=list)
    #: (period, cell, unknown, low, high): an earlier revision's window on a hidden cell.
    borrowed: list[tuple[Span, CellKey, int, float, float]] = field(default_factory=list)

    def new(self, span: Span, cell: CellKey) -> int:
        self.names.append((span, cell))
        self.low.append(0.0)
        self.high.append(_INF)
        self.shown.append(False)
        return len(self.names) - 1

    def row(self, low: float, high: float, terms: Iterable[tuple[int, float]]) -> None:
        merged: dict[int, float] = defaultdict(float)
        for var, coefficient in terms:
            merged[var] += coefficient
        kept = [(v, c) for v, c in merged.items() if c]
        if kept:
            self.rows.append((low, high, [v for v, _ in kept], [c for _, c in kept]))


def _build(
    releases: Sequence[Release],
    rule: DisclosureRule,
    *,
    share: bool,
    periods: bool,
    history: bool = True,
    unshare: frozenset[tuple[Span, CellKey]] = frozenset(),
) -> _Model:
    """The reader model: each release's relations (with ``history``, earlier revisions'
    too, else only their windows), over unknowns shared between revisions where the
    reader assumes a cell unchanged."""
    model = _Model()
    by_span: dict[Span, list[Release]] = defaultdict(list)
    for release in releases:
        by_span[release.span].append(release)
    latest: dict[Span, dict[CellKey, int]] = {}
    for span, group in sorted(by_span.items()):
        group.sort(key=_order)
        read = _Revisions(model, rule, span, share, unshare).read(group)
        for cells in read if history or not share else read[-1:]:
            _within(model, cells)
        latest[span] = read[-1]
    if periods:
        _across(model, latest)
    return model


class _Revisions:
    """One period's releases read in order: which unknown each cell's count is about."""

    def __init__(
        self,
        model: _Model,
        rule: DisclosureRule,
        span: Span,
        share: bool,
        unshare: frozenset[tuple[Span, CellKey]],
    ) -> None:
        self.model, self.rule, self.span = model, rule, span
        self.share, self.unshare = share, unshare
        self.known: dict[int, tuple[float, float]] = {}
        self.last_count: dict[int, int] = {}
        self.current: dict[CellKey, int] = {}

    def read(self, group: Sequence[Release]) -> list[dict[CellKey, int]]:
        """Each release's cell -> unknown, in the order given."""
        last_window: dict[int, tuple[float, float]] = {}
        read: list[dict[CellKey, int]] = []
        for position, release in enumerate(group):
            is_latest = position == len(group) - 1
            hidden_whole = _hidden_breakdowns(release)
            cells: dict[CellKey, int] = {}
            for cell, count in release.cells.items():
                if count is None:
                    window = (0.0 if cell[:2] in hidden_whole else 1.0), _INF
                else:
                    low, high = self.rule.possible_true_counts(count)
                    window = float(low), float(high)
                var = cells[cell] = self._unknown(cell, count, window, is_latest)
                last_window[var] = window
            read.append(cells)
        for var, window in last_window.items():
            self.model.low[var], self.model.high[var] = window
            if self.known[var] != window:
                span, cell = self.model.names[var]
                self.model.borrowed.append((span, cell, var, *self.known[var]))
        return read

    def _unknown(
        self, cell: CellKey, count: int | None, window: tuple[float, float], is_latest: bool
    ) -> int:
        var = self.current.get(cell)
        if var is not None and not self._same(var, cell, count, window, is_latest):
            var = None
        if var is None:
            var = self.current[cell] = self.model.new(self.span, cell)
            self.known[var] = (0.0, _INF)
        was = self.known[var]
        self.known[var] = (max(was[0], window[0]), min(was[1], window[1]))
        if count is not None:
            self.model.shown[var] = True
            self.last_count[var] = count
        return var

    def _same(
        self,
        var: int,
        cell: CellKey,
        count: int | None,
        window: tuple[float, float],
        is_latest: bool,
    ) -> bool:
        """Whether the reader takes this count to be about the same true value as before."""
        before = self.last_count.get(var)
        was = self.known[var]
        return (
            self.share
            and not (is_latest and (self.span, cell) in self.unshare)
            and (before is None or count is None or before == count)
            and max(window[0], was[0]) <= min(window[1], was[1])
        )


def _order(release: Release) -> tuple[int, str]:
    return (release.revision, release.publication)


def _changed(before: int | None, now: int | None) -> bool:
    return before is not None and now is not None and before != now


def _hidden_breakdowns(release: Release) -> set[tuple[str, str]]:
    """(measure, dimension) breakdowns of the release with every cell hidden."""
    shown = {cell[:2] for cell, count in release.cells.items() if count is not None}
    return {cell[:2] for cell in release.cells} - shown


def _within(model: _Model, cells: Mapping[CellKey, int]) -> None:
    """The relations inside one release."""
    _margins(model, cells)
    for (measure, dimension, value), var in cells.items():
        if measure == CHILDREN and (EVENTS, dimension, value) in cells:
            model.row(-_INF, 0, [(var, 1.0), (cells[EVENTS, dimension, value], -1.0)])
        if measure == REFERRALS:
            parts = [
                cells[part, dimension, value]
                for part in (REFERRALS_NOT_ASSESSED, REFERRALS_NOT_RECORDED)
                if (part, dimension, value) in cells
            ]
            if parts:
                model.row(-_INF, 0, [*((p, 1.0) for p in parts), (var, -1.0)])
    pseudonyms = cells.get((PSEUDONYMS, TOTAL, ALL))
    if pseudonyms is not None:
        for other, sign in ((CHILDREN, 1.0), (EVENTS, -1.0)):
            if (other, TOTAL, ALL) in cells:
                model.row(-_INF, 0, [(cells[other, TOTAL, ALL], sign), (pseudonyms, -sign)])


def _margins(model: _Model, cells: Mapping[CellKey, int]) -> None:
    """Each breakdown of events or children against its measure's total."""
    by_breakdown: dict[tuple[str, str], list[int]] = defaultdict(list)
    for (measure, dimension, _), var in cells.items():
        if measure in (EVENTS, CHILDREN) and dimension != TOTAL:
            by_breakdown[measure, dimension].append(var)
    for (measure, dimension), members in by_breakdown.items():
        total = cells.get((measure, TOTAL, ALL))
        if total is None:
            continue
        if (measure, dimension) in ADDITIVE:
            model.row(0, 0, [*((v, 1.0) for v in members), (total, -1.0)])
        else:
            for var in members:
                model.row(-_INF, 0, [(var, 1.0), (total, -1.0)])


def _across(model: _Model, latest: Mapping[Span, Mapping[CellKey, int]]) -> None:
    """Link each period to every set of other released periods that exactly covers it."""
    spans = sorted(latest)
    for whole in spans:
        for parts in _covers(whole, spans):
            for cell, total in latest[whole].items():
                measure = cell[0]
                members = [latest[p][cell] for p in parts if cell in latest[p]]
                if measure in TIME_ADDITIVE:
                    model.row(0, 0, [*((m, 1.0) for m in members), (total, -1.0)])
                elif measure in DISTINCT:
                    model.row(0, _INF, [*((m, 1.0) for m in members), (total, -1.0)])
                    for member in members:
                        model.row(-_INF, 0, [(member, 1.0), (total, -1.0)])


def _covers(whole: Span, spans: Sequence[Span]) -> list[list[Span]]:
    """Every chain of two or more other spans, each starting the day after the previous
    ends, from ``whole``'s start to its end."""
    inside = [s for s in spans if s != whole and whole[0] <= s[0] and s[1] <= whole[1]]
    starting: dict[date, list[Span]] = defaultdict(list)
    for span in inside:
        starting[span[0]].append(span)
    found: list[list[Span]] = []

    def extend(chain: list[Span]) -> None:
        end = chain[-1][1]
        if end == whole[1]:
            if len(chain) > 1:
                found.append(list(chain))
            return
        for nxt in starting.get(end + timedelta(days=1), ()):
            extend([*chain, nxt])

    for first in starting.get(whole[0], ()):
        extend([first])
    return found[:8]  # a handful of covers says all a reader can say


def _highs(
    low: Sequence[float],
    high: Sequence[float],
    rows: Sequence[tuple[float, float, list[int], list[float]]],
    cost: Sequence[float],
) -> highspy.Highs:
    """A HiGHS instance holding one linear programme (rows given by their terms)."""
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    n = len(low)
    columns: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for r, (_, _, variables, coefficients) in enumerate(rows):
        for var, coefficient in zip(variables, coefficients, strict=True):
            columns[var].append((r, coefficient))
    starts, index, value = [0], [], []
    for column in columns:
        for r, coefficient in column:
            index.append(r)
            value.append(coefficient)
        starts.append(len(index))
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = len(rows)
    lp.col_cost_ = np.array(cost, dtype=float)
    lp.col_lower_ = np.array(low, dtype=float)
    lp.col_upper_ = np.array(high, dtype=float)
    lp.row_lower_ = np.array([r[0] for r in rows], dtype=float)
    lp.row_upper_ = np.array([r[1] for r in rows], dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=float)
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = len(rows)
    h.passModel(lp)
    return h


class _Solver:
    """The reader model as one linear programme; the extremes of one unknown at a time."""

    def __init__(self, model: _Model) -> None:
        low, high = list(model.low), list(model.high)
        for _, _, var, borrowed_low, borrowed_high in model.borrowed:
            low[var], high[var] = max(low[var], borrowed_low), min(high[var], borrowed_high)
        if any(lo > hi for lo, hi in zip(low, high, strict=True)):
            raise _Infeasible
        self.h = _highs(low, high, model.rows, [0.0] * len(low))
        self.last: int | None = None

    def extreme(self, var: int, sense: highspy.ObjSense) -> float:
        if self.last is not None:
            self.h.changeColCost(self.last, 0.0)
        self.h.changeColCost(var, 1.0)
        self.last = var
        self.h.changeObjectiveSense(sense)
        self.h.run()
        status = self.h.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            return float(self.h.getInfo().objective_function_value)
        if status == highspy.HighsModelStatus.kUnbounded:
            return _INF
        if status in (
            highspy.HighsModelStatus.kInfeasible,
            highspy.HighsModelStatus.kUnboundedOrInfeasible,
        ):
            raise _Infeasible
        raise RuntimeError(f"HiGHS could not bound a cell: {status}")


def _contradicted(model: _Model) -> frozenset[tuple[Span, CellKey]]:
    """The earlier revisions' windows that no table satisfying the rest can meet all of
    together: the fewest (in total distance) a reader has to give up."""
    n = len(model.names)
    low, high = list(model.low), list(model.high)
    rows = list(model.rows)
    cost = [0.0] * n
    for _, _, var, borrowed_low, borrowed_high in model.borrowed:
        below, above = len(low), len(low) + 1
        low += [0.0, 0.0]
        high += [_INF, _INF]
        cost += [1.0, 1.0]
        rows.append((borrowed_low, borrowed_high, [var, below, above], [1.0, 1.0, -1.0]))
    h = _highs(low, high, rows, cost)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return frozenset((span, cell) for span, cell, *_ in model.borrowed)
    values = h.getSolution().col_value
    return frozenset(
        (span, cell)
        for i, (span, cell, *_) in enumerate(model.borrowed)
        if values[n + 2 * i] + values[n + 2 * i + 1] > 1e-6
    )


def _exposed(model: _Model, rule: DisclosureRule) -> dict[int, Exposure]:
    """Hidden unknowns (never published) whose range is within 1..threshold or one small value."""
    solver = _Solver(model)
    threshold = rule.suppress_at_or_below
    found: dict[int, Exposure] = {}
    for var, shown in enumerate(model.shown):
        if shown:
            continue
        top = _floor(solver.extreme(var, highspy.ObjSense.kMaximize))
        if top > threshold:
            continue
        bottom = _ceil(solver.extreme(var, highspy.ObjSense.kMinimize))
        if bottom >= 1:
            span, cell = model.names[var]
            found[var] = Exposure(span[0], span[1], cell, bottom, int(top))
    return found


def _floor(value: float) -> float:
    return value if value == _INF else float(np.floor(value + 1e-6))


def _ceil(value: float) -> int:
    return int(np.ceil(value - 1e-6))


def audit(releases: Sequence[Release], rule: DisclosureRule) -> list[Exposure]:
    """Every hidden cell of ``releases`` a reader can confine (see the reader model)."""
    return sorted(_exposed(_readable(releases, rule), rule).values(), key=_exposure_order)


def _exposure_order(exposure: Exposure) -> tuple[date, date, CellKey]:
    return (exposure.start, exposure.end, exposure.cell)


def _readable(releases: Sequence[Release], rule: DisclosureRule) -> _Model:
    """The reader model, giving up the assumptions the releases contradict (see above)."""
    model = _build(releases, rule, share=True, periods=True)
    if _feasible(model):
        return model
    model = _build(releases, rule, share=True, periods=True, history=False)
    if _feasible(model):
        return model
    contradicted = _contradicted(model)
    if contradicted:
        model = _build(
            releases, rule, share=True, periods=True, history=False, unshare=contradicted
        )
        if _feasible(model):
            return model
    model = _build(releases, rule, share=False, periods=True)
    if _feasible(model):
        return model
    return _build(releases, rule, share=False, periods=False)


def _feasible(model: _Model) -> bool:
    if not model.names:
        return True
    try:
        _Solver(model).extreme(0, highspy.ObjSense.kMinimize)
    except _Infeasible:
        return False
    return True


def related(candidate: Release, published: Iterable[Release]) -> list[Release]:
    """The published releases a reader can combine with ``candidate``: every revision of
    every period that overlaps it, and of every period overlapping those (a month's
    quarter brings the quarter's other months, which its sum links to the month)."""
    published = list(published)
    near = {candidate.span} | {r.span for r in published if _overlap(r.span, candidate.span)}
    return [r for r in published if any(_overlap(r.span, span) for span in near)]


def _overlap(one: Span, other: Span) -> bool:
    return one[0] <= other[1] and other[0] <= one[1]


def secure_release(
    candidate: Release, published: Iterable[Release], rule: DisclosureRule
) -> Secured:
    """The candidate with whatever more it must hide so that, read with every release
    it overlaps, no hidden cell is exposed that was not exposed before."""
    context = related(candidate, published)
    secured = Secured(candidate)
    before: dict[tuple[Span, CellKey], Exposure] | None = None
    cells = dict(candidate.cells)
    while True:
        release = replace(candidate, cells=dict(cells))
        exposed = _exposed(_readable([*context, release], rule), rule)
        if exposed and before is None:
            earlier = _exposed(_readable(context, rule), rule) if context else {}
            before = {(_span(e), e.cell): e for e in earlier.values()}
            secured.earlier = sorted(before.values(), key=_exposure_order)
        new = [e for e in exposed.values() if not before or before.get((_span(e), e.cell)) != e]
        if not new:
            break
        choices = {_next_to_hide(e, cells) for e in new} - {None}
        if choices:
            for choice in sorted(c for c in choices if c is not None):
                cells[choice] = None
                secured.linked_suppressions.append(choice)
            continue
        # Nothing left to hide for them: their breakdowns whole, zeros too, then their
        # measures, then everything.
        targets: list[CellKey] = []
        for width in (2, 1, 0):
            wanted = {e.cell[:width] for e in new}
            targets = [c for c, n in cells.items() if n is not None and c[:width] in wanted]
            if targets:
                break
        if not targets:
            break
        for cell in targets:
            cells[cell] = None
    secured.release = release
    secured.withheld = sorted(_hidden_breakdowns(release) - _hidden_breakdowns(candidate))
    return secured


def _span(exposure: Exposure) -> Span:
    return (exposure.start, exposure.end)


def _next_to_hide(exposure: Exposure, cells: Mapping[CellKey, int | None]) -> CellKey | None:
    """The candidate's published non-zero cell to hide for ``exposure``: the same cell,
    else the smallest of the same breakdown, of the same dimension and value in another
    measure, of the same measure."""
    if cells.get(exposure.cell):
        return exposure.cell
    target = exposure.cell
    for part in (slice(0, 2), slice(1, 3), slice(0, 1)):
        shown = sorted((n, c) for c, n in cells.items() if n and c[part] == target[part])
        if shown:
            return shown[0][1]
    return None
