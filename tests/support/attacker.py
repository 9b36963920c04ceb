"""An attacker from outside: what everything the trends topic ever published lets anyone
derive about each suppressed cell.

Written from the disclosure rules alone, not from the hub's code: it imports nothing of
``hub`` or ``streams`` and uses no solver, only interval arithmetic on integers, so its
findings are a truth about the published cells that does not share the protection's
mistakes (the protection plans its suppressions with an LP solver). Every bound it derives
holds for any true values that agree with its model below; a tighter attacker could find
more, never less.

The model, with threshold T (7) and rounding R (5):

1. Variables. One integer unknown per true cell, a cell being (period start, period end,
   measure, dimension, value): publications that release the same dates describe the
   same true cells. The releases of a span (a release: all cells of one publication,
   period start and revision) are walked in order of revision, then publication name. A
   cell keeps its variable (it is assumed unchanged) from one release to the next when
   what the two say of it can both be true: one is suppressed, or both published the
   same count. Otherwise a new variable (an epoch) starts: two different published
   counts, a published 0 followed by a suppression (0 cannot turn into 1..T unchanged),
   or a release that publishes the cell's breakdown without the cell (an absent cell is
   a true 0, so the cell changed). Releases without the breakdown at all say nothing.
   Joining is greedy: a cell published 10, then suppressed, then published 15 keeps the
   suppressed release with the 10.
2. Bounds from publication. ``published_as(n)`` is what a true n publishes as: nothing
   for 1..T, else n rounded half up to a multiple of R, and a rounding that lands in 1..T
   is published as the first multiple of R above T (8 and 9 publish as 10). A published
   count c says the true value is one of the n with ``published_as(n) == c``
   (``true_values``: 0 -> 0..0, 10 -> 8..12, 15 -> 13..17, 5 -> nothing: inconsistent).
   A suppressed cell is at least 1, or at least 0 in a withheld breakdown (every cell of
   its measure and dimension in that release suppressed). No upper bound (``UNBOUNDED``).
3. Within a release. For ``events`` and ``children``, the cells of an additive dimension
   add up to the measure's ``total``/``all`` cell of the same release, when it is
   published or suppressed there (cells the release lacks are true zeros and add
   nothing). Additive: events by age_band, sex, area, threshold_level, role, outcome,
   agency_type, subject_basis; children by age_band, sex, area, threshold_level, role,
   outcome, known_to_agencies. Every other cell of a measure with a total cell is at
   most that total (a cell counts a subset). Referrals by an agency (no total): the
   not-assessed and not-recorded online referrals are each at most the referrals, and
   together too.
4. Between measures of a release: children of a dimension and value are at most the
   events of the same dimension and value (total/all included); pseudonyms/total/all is
   at least children/total/all and at most events/total/all.
5. Time. A span S that other published spans cover exactly (contiguous, not
   overlapping, the first starting on S's first day, each next one the day after the
   last ends, the last ending on S's last day: the three months of a quarter) links its
   cells to theirs, each span by its latest release that has the cell's breakdown (the
   cell's latest epoch; a sub-span whose latest such release lacks the cell contributes
   0, a sub-span without the breakdown at all drops the link). For ``events`` and the
   three referral measures, S's cell equals the sum of the sub-spans' cells; for
   ``children`` and ``pseudonyms`` (distinct counts), S's cell is at least each
   sub-span's cell and at most their sum.
6. Propagation. Each linear constraint, sum(a_i x_i) <= b (an equality is two),
   tightens each variable from the others' bounds, upper bounds rounded down and lower
   ones up, to a fixpoint: a worklist of the constraints of every variable that changed,
   capped at 200 passes' worth of constraint visits. If a variable's interval comes out
   empty, the unchanged-between-revisions assumption cannot hold for some cell: every
   variable is split back into one per release (no sharing at all) and the propagation
   starts again (``split_revisions``, ``split_because``). If a variable is still empty,
   the publications contradict the model itself: that is reported (``inconsistent``),
   the empty variables are left out of further propagation, nothing raises.
7. Findings. Every suppressed cell of every release gets its variable's final interval
   (``ranges``). A finding is one whose interval lies within 1..T ("range"), is a single
   value in 1..T ("exact"), or is exactly 0 ("zero": a suppressed cell of a withheld
   breakdown shown to be 0, which says no child had that).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

#: The upper bound of a variable nothing bounds: larger than any count.
UNBOUNDED = 10**9
#: Visits of each constraint the propagation allows, at most.
MAX_PASSES = 200

TOTAL, ALL = "total", "all"
EVENTS, CHILDREN, PSEUDONYMS = "events", "children", "pseudonyms"
REFERRALS = "referrals"
NOT_ASSESSED = "referrals_online_not_assessed"
NOT_RECORDED = "referrals_online_not_recorded"
#: Dimensions whose cells add up to the measure's total.
ADDITIVE: dict[str, frozenset[str]] = {
    EVENTS: frozenset(
        {
            "age_band",
            "sex",
            "area",
            "threshold_level",
            "role",
            "outcome",
            "agency_type",
            "subject_basis",
        }
    ),
    CHILDREN: frozenset(
        {"age_band", "sex", "area", "threshold_level", "role", "outcome", "known_to_agencies"}
    ),
}
#: Measures a longer span has the sum of (counts of events).
TIME_ADDITIVE = frozenset({EVENTS, REFERRALS, NOT_ASSESSED, NOT_RECORDED})
#: Measures a longer span has between the largest and the sum of (distinct counts).
DISTINCT = frozenset({CHILDREN, PSEUDONYMS})

Kind = Literal["range", "exact", "zero"]
Span = tuple[date, date]
Breakdown = tuple[str, str]
ReleaseKey = tuple[str, date, int]
Terms = tuple[tuple[int, int], ...]


# --- what the attacker reports ---------------------------------------------------------


@dataclass(frozen=True, order=True)
class CellRef:
    """One cell of one release: (publication, period start, revision) and the cell."""

    publication: str
    period_start: date
    revision: int
    measure: str
    dimension: str
    value: str

    def __str__(self) -> str:
        return (
            f"{self.publication} {self.period_start} r{self.revision} "
            f"{self.measure}/{self.dimension}/{self.value}"
        )


@dataclass(frozen=True)
class Finding:
    """A suppressed cell whose true value the publications give away (within 1..T, or 0)."""

    publication: str
    period_start: date
    revision: int
    measure: str
    dimension: str
    value: str
    lo: int
    hi: int
    kind: Kind
    why: str

    @property
    def cell(self) -> CellRef:
        return CellRef(
            self.publication,
            self.period_start,
            self.revision,
            self.measure,
            self.dimension,
            self.value,
        )

    def __str__(self) -> str:
        what = f"is exactly {self.lo}" if self.lo == self.hi else f"is {self.lo}..{self.hi}"
        if self.kind == "zero":
            what += " (a withheld breakdown: none had this)"
        return f"suppressed {self.cell} {what}; {self.why}"


@dataclass
class AttackResult:
    """What the attack derived: the findings; every suppressed cell's interval (lo > hi:
    its cell is one the publications contradict); whether the unchanged-between-revisions
    assumption had to be dropped and the variables that came out empty with it; and the
    variables that come out empty even without it."""

    findings: list[Finding]
    ranges: dict[CellRef, tuple[int, int]]
    split_revisions: bool = False
    split_because: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)


# --- what a true count publishes as ---------------------------------------------------


def published_as(n: int, threshold: int = 7, round_to: int = 5) -> int | None:
    """The count a true `n` is published as; None: suppressed."""
    if 1 <= n <= threshold:
        return None
    rounded = (2 * n + round_to) // (2 * round_to) * round_to  # half up
    if 1 <= rounded <= threshold:
        return (threshold // round_to + 1) * round_to
    return rounded


def true_values(count: int, threshold: int = 7, round_to: int = 5) -> tuple[int, int]:
    """The least and greatest true value published as `count`; lo > hi when none is."""
    found = [
        n for n in range(0, count + round_to + 1) if published_as(n, threshold, round_to) == count
    ]
    return (min(found), max(found)) if found else (1, 0)


# --- the releases ----------------------------------------------------------------------


@dataclass
class _Release:
    key: ReleaseKey
    span: Span
    #: (measure, dimension) -> value -> published count, None when suppressed.
    breakdowns: dict[Breakdown, dict[str, int | None]] = field(default_factory=dict)

    def ref(self, breakdown: Breakdown, value: str) -> CellRef:
        return CellRef(*self.key, *breakdown, value)


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _releases(snapshots: Iterable[Mapping[str, Any]]) -> list[_Release]:
    """Every release, ordered by span, then revision, then publication name."""
    found: dict[ReleaseKey, _Release] = {}
    for s in snapshots:
        start = _day(s["period_start"])
        key = (str(s["publication"]), start, int(s["revision"]))
        release = found.setdefault(key, _Release(key, (start, _day(s["period_end"]))))
        count = None if s["suppressed"] or s["count"] is None else int(s["count"])
        cells = release.breakdowns.setdefault((str(s["measure"]), str(s["dimension"])), {})
        cells[str(s["value"])] = count
    return sorted(found.values(), key=lambda r: (r.span, r.key[2], r.key[0]))


# --- interval propagation ---------------------------------------------------------------


class _Network:
    """Integer variables with intervals, and linear constraints sum(a_i x_i) <= b."""

    def __init__(self) -> None:
        self.lo: list[int] = []
        self.hi: list[int] = []
        self.names: list[str] = []
        self.lo_why: list[str] = []
        self.hi_why: list[str] = []
        self.terms: list[Terms] = []
        self.rhs: list[int] = []
        self.labels: list[str] = []
        self.uses: list[list[int]] = []
        self.seen: set[tuple[Terms, int]] = set()
        self.empty: list[int] = []
        self.is_empty: set[int] = set()

    def new_var(self, name: str) -> int:
        self.lo.append(0)
        self.hi.append(UNBOUNDED)
        self.names.append(name)
        self.lo_why.append("a count is never negative")
        self.hi_why.append("nothing bounds it")
        self.uses.append([])
        return len(self.lo) - 1

    def overlaps(self, var: int, lo: int, hi: int) -> bool:
        return max(self.lo[var], lo) <= min(self.hi[var], hi)

    def narrow(self, var: int, lo: int, hi: int, why: str) -> None:
        if lo > self.lo[var]:
            self.lo[var], self.lo_why[var] = lo, why
        if hi < self.hi[var]:
            self.hi[var], self.hi_why[var] = hi, why

    def add_le(self, terms: Iterable[tuple[int, int]], rhs: int, label: str) -> None:
        """sum(coefficient * variable) <= rhs."""
        merged: dict[int, int] = defaultdict(int)
        for var, coefficient in terms:
            merged[var] += coefficient
        key = (tuple(sorted((v, a) for v, a in merged.items() if a)), rhs)
        if not key[0] or key in self.seen:
            return
        self.seen.add(key)
        self.terms.append(key[0])
        self.rhs.append(rhs)
        self.labels.append(label)
        for var, _ in key[0]:
            self.uses[var].append(len(self.terms) - 1)

    def add_eq(self, terms: Sequence[tuple[int, int]], rhs: int, label: str) -> None:
        self.add_le(terms, rhs, label)
        self.add_le([(v, -a) for v, a in terms], -rhs, label)

    def propagate(self, stop_on_empty: bool) -> None:
        for var in range(len(self.lo)):
            self._check(var)
        queued = [True] * len(self.terms)
        queue = deque(range(len(self.terms)))
        budget = MAX_PASSES * len(self.terms)
        while queue and budget > 0 and not (stop_on_empty and self.empty):
            budget -= 1
            constraint = queue.popleft()
            queued[constraint] = False
            for var in self._tighten(constraint):
                for other in self.uses[var]:
                    if not queued[other]:
                        queued[other] = True
                        queue.append(other)

    def _tighten(self, constraint: int) -> list[int]:
        """Each variable's bound from the least the others can contribute; the changed."""
        terms = self.terms[constraint]
        if any(var in self.is_empty for var, _ in terms):
            return []
        least = [a * self.lo[v] if a > 0 else a * self.hi[v] for v, a in terms]
        total = sum(least)
        label = self.labels[constraint]
        changed = []
        for (var, a), own in zip(terms, least, strict=True):
            room = self.rhs[constraint] - (total - own)  # a * var <= room
            if a > 0 and room // a < self.hi[var]:
                self.hi[var], self.hi_why[var] = room // a, label
            elif a < 0 and -(-room // a) > self.lo[var]:
                self.lo[var], self.lo_why[var] = -(-room // a), label
            else:
                continue
            changed.append(var)
            self._check(var)
        return changed

    def _check(self, var: int) -> None:
        if self.lo[var] > self.hi[var] and var not in self.is_empty:
            self.is_empty.add(var)
            self.empty.append(var)

    def why(self, var: int) -> str:
        return (
            f"at least {self.lo[var]}: {self.lo_why[var]}; "
            f"at most {self.hi[var]}: {self.hi_why[var]}"
        )

    def describe(self, var: int) -> str:
        return f"{self.names[var]}: {self.why(var)}"


# --- the model --------------------------------------------------------------------------


def _covers(span: Span, by_start: Mapping[date, Sequence[Span]]) -> Iterator[list[Span]]:
    """Every sequence of other spans, contiguous and not overlapping, that is exactly `span`."""

    def extend(path: list[Span], at: date) -> Iterator[list[Span]]:
        for step in by_start.get(at, ()):
            if step == span or step[1] > span[1]:
                continue
            if step[1] == span[1]:
                yield [*path, step]
            else:
                yield from extend([*path, step], step[1] + timedelta(days=1))

    return extend([], span[0])


def _span_text(span: Span) -> str:
    return f"{span[0]}..{span[1]}"


class _Model:
    """The variables and constraints of the releases (rules 1 to 5)."""

    def __init__(
        self, releases: Sequence[_Release], threshold: int, round_to: int, shared: bool
    ) -> None:
        self.threshold, self.round_to, self.shared = threshold, round_to, shared
        self.net = _Network()
        self.var_of: dict[tuple[ReleaseKey, Breakdown, str], int] = {}
        #: span -> breakdown -> value -> the variable of its latest epoch.
        self.latest: dict[Span, dict[Breakdown, dict[str, int]]] = {}
        spans: dict[Span, list[_Release]] = defaultdict(list)
        for release in releases:
            spans[release.span].append(release)
        for span, group in spans.items():
            self._variables(span, group)
        for release in releases:
            self._within(release)
            self._between_measures(release)
        self._over_time(list(spans))

    # rules 1 and 2

    def _variables(self, span: Span, group: Sequence[_Release]) -> None:
        values: dict[Breakdown, dict[str, None]] = {}
        for release in group:
            for breakdown, cells in release.breakdowns.items():
                values.setdefault(breakdown, {}).update(dict.fromkeys(cells))
        latest = self.latest.setdefault(span, {})
        for breakdown, names in values.items():
            for value in names:
                self._epochs(group, breakdown, value)
            last = [r for r in group if breakdown in r.breakdowns][-1]
            latest[breakdown] = {
                value: self.var_of[(last.key, breakdown, value)]
                for value in last.breakdowns[breakdown]
            }

    def _epochs(self, group: Sequence[_Release], breakdown: Breakdown, value: str) -> None:
        current: int | None = None
        for release in group:
            cells = release.breakdowns.get(breakdown)
            if cells is None:
                continue
            if value not in cells:
                current = None  # a true 0 here: the cell changed
                continue
            lo, hi, why = self._window(release, breakdown, value)
            if current is None or not self.shared or not self.net.overlaps(current, lo, hi):
                current = self.net.new_var(str(release.ref(breakdown, value)))
            self.net.narrow(current, lo, hi, why)
            self.var_of[(release.key, breakdown, value)] = current

    def _window(self, release: _Release, breakdown: Breakdown, value: str) -> tuple[int, int, str]:
        cells = release.breakdowns[breakdown]
        count, ref = cells[value], release.ref(breakdown, value)
        if count is not None:
            lo, hi = true_values(count, self.threshold, self.round_to)
            return lo, hi, f"{ref} published {count}"
        if all(other is None for other in cells.values()):
            return 0, UNBOUNDED, f"{ref} suppressed in a withheld breakdown"
        return 1, UNBOUNDED, f"{ref} suppressed"

    # rules 3 and 4

    def _var(self, release: _Release, breakdown: Breakdown, value: str) -> int | None:
        return self.var_of.get((release.key, breakdown, value))

    def _within(self, release: _Release) -> None:
        where = f"{release.key[0]} {release.key[1]} r{release.key[2]}"
        for (measure, dimension), cells in release.breakdowns.items():
            total = self._var(release, (measure, TOTAL), ALL)
            if dimension == TOTAL or total is None:
                continue
            terms = [(self.var_of[(release.key, (measure, dimension), v)], 1) for v in cells]
            if dimension in ADDITIVE.get(measure, ()):
                label = f"{where}: {measure} by {dimension} add up to the {measure} total"
                self.net.add_eq([*terms, (total, -1)], 0, label)
            else:
                label = f"{where}: {measure} by {dimension} at most the {measure} total"
                for term in terms:
                    self.net.add_le([term, (total, -1)], 0, label)

    def _between_measures(self, release: _Release) -> None:
        where = f"{release.key[0]} {release.key[1]} r{release.key[2]}"
        for (measure, dimension), cells in release.breakdowns.items():
            for value in cells:
                mine = self.var_of[(release.key, (measure, dimension), value)]
                if measure == CHILDREN:
                    events = self._var(release, (EVENTS, dimension), value)
                    if events is not None:
                        label = f"{where}: children {dimension}/{value} at most the events"
                        self.net.add_le([(mine, 1), (events, -1)], 0, label)
                elif measure == REFERRALS:
                    self._referrals(release, where, (dimension, value), mine)
        pseudonyms = self._var(release, (PSEUDONYMS, TOTAL), ALL)
        children = self._var(release, (CHILDREN, TOTAL), ALL)
        events = self._var(release, (EVENTS, TOTAL), ALL)
        if pseudonyms is not None and children is not None:
            label = f"{where}: pseudonyms at least the children"
            self.net.add_le([(children, 1), (pseudonyms, -1)], 0, label)
        if pseudonyms is not None and events is not None:
            label = f"{where}: pseudonyms at most the events"
            self.net.add_le([(pseudonyms, 1), (events, -1)], 0, label)

    def _referrals(
        self, release: _Release, where: str, cell: tuple[str, str], referrals: int
    ) -> None:
        dimension, value = cell
        parts = [self._var(release, (m, dimension), value) for m in (NOT_ASSESSED, NOT_RECORDED)]
        label = f"{where}: online referrals not assessed/recorded for {value} within the referrals"
        present = [part for part in parts if part is not None]
        for part in present:
            self.net.add_le([(part, 1), (referrals, -1)], 0, label)
        if len(present) == 2:
            self.net.add_le([(present[0], 1), (present[1], 1), (referrals, -1)], 0, label)

    # rule 5

    def _over_time(self, spans: Sequence[Span]) -> None:
        by_start: dict[date, list[Span]] = defaultdict(list)
        for span in spans:
            by_start[span[0]].append(span)
        for span in spans:
            for cover in _covers(span, by_start):
                for breakdown in self.latest[span]:
                    self._link(span, cover, breakdown)

    def _link(self, span: Span, cover: Sequence[Span], breakdown: Breakdown) -> None:
        measure = breakdown[0]
        parts = [self.latest[sub].get(breakdown) for sub in cover]
        present = [part for part in parts if part is not None]
        if measure not in TIME_ADDITIVE | DISTINCT or len(present) < len(parts):
            return
        over = ", ".join(_span_text(sub) for sub in cover)
        for value, whole in self.latest[span][breakdown].items():
            pieces = [part[value] for part in present if value in part]
            label = f"{measure}/{breakdown[1]}/{value} of {_span_text(span)} against {over}"
            if measure in TIME_ADDITIVE:
                self.net.add_eq([(whole, 1), *((p, -1) for p in pieces)], 0, label + " (sum)")
                continue
            for piece in pieces:
                self.net.add_le([(piece, 1), (whole, -1)], 0, label + " (at least each)")
            self.net.add_le([(whole, 1), *((p, -1) for p in pieces)], 0, label + " (at most sum)")


# --- the attack -------------------------------------------------------------------------


def attack(
    snapshots: Iterable[Mapping[str, Any]], threshold: int = 7, round_to: int = 5
) -> AttackResult:
    """Everything the published `snapshots` (every revision) give away: see the module."""
    releases = _releases(snapshots)
    model = _Model(releases, threshold, round_to, shared=True)
    model.net.propagate(stop_on_empty=True)
    split_because = [model.net.describe(var) for var in model.net.empty]
    if split_because:
        model = _Model(releases, threshold, round_to, shared=False)
        model.net.propagate(stop_on_empty=False)
    result = _result(model, releases, threshold)
    result.split_revisions = bool(split_because)
    result.split_because = split_because
    result.inconsistent = [model.net.describe(var) for var in model.net.empty]
    return result


def _kind(lo: int, hi: int, threshold: int) -> Kind | None:
    if lo == hi == 0:
        return "zero"
    if lo == hi and 1 <= lo <= threshold:
        return "exact"
    if 1 <= lo <= hi <= threshold:
        return "range"
    return None


def _result(model: _Model, releases: Sequence[_Release], threshold: int) -> AttackResult:
    net = model.net
    result = AttackResult(findings=[], ranges={})
    for release in releases:
        for breakdown, cells in release.breakdowns.items():
            for value in (v for v, count in cells.items() if count is None):
                var = model.var_of[(release.key, breakdown, value)]
                ref = release.ref(breakdown, value)
                result.ranges[ref] = (net.lo[var], net.hi[var])
                kind = _kind(net.lo[var], net.hi[var], threshold)
                if kind is not None and var not in net.is_empty:
                    result.findings.append(
                        Finding(
                            *release.key, *breakdown, value, *result.ranges[ref], kind, net.why(var)
                        )
                    )
    result.findings.sort(key=lambda f: f.cell)
    return result
