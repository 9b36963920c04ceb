"""The trend cells one publication period gets: true counts, then disclosure control.

Pure functions: no Kafka, no I/O. The publisher hands in every record's current
version (``streams.records.RecordVersion``), the period, the taxonomy, the partner
ids and the agreement's disclosure rule, and gets back the cells to publish.

What is counted (a record is *in the period* when it is live, i.e. not
withdrawn, and ``start <= occurred_on <= end``, both dates included):

* ``events``: case records in the period with an online component (``online``
  is YES). Broken down by ``total`` (one cell, ``all``), ``agency_type``,
  ``age_band``, ``sex``, ``area``, ``threshold_level`` (``1``..``4`` or
  ``unknown``), ``role`` and ``outcome``, where every record counts once; and
  by ``risk_code`` (a record counts once per code on it), ``cell_4c`` (once per
  distinct 4Cs cell of its codes) and ``vulnerability`` (once per flag), where
  one record can count in several cells.
* ``events`` by ``subject_basis``: the same records by the basis of their
  subject pseudonym (``NHS_NUMBER``, ``NAME_DOB``, ``LOCAL_ID``, or ``NONE``
  for a record without a linkable subject), where every record counts once:
  the share of events each kind of identifier links.
* ``children``: distinct children among those records: linked groups of
  pseudonymised subjects, a child's other pseudonyms (under earlier keys, and
  on the other identifiers its records carry: ``RecordVersion.previous``)
  joined to its subject by any live record of any date (``linked_subjects``);
  records without a subject count in ``events`` only. For age band,
  sex, area, threshold level, role and outcome each child counts once, with
  the values of its latest record in the period (latest ``occurred_on``; on a
  tie the highest ``record_key``), so the cells add up to the total. For risk
  code, 4Cs cell, vulnerability and agency type a child counts once under every
  value any of its records in the period has, so the cells can add up to more
  than the total.
* ``children`` by ``known_to_agencies``: each child counted in the period,
  under ``1`` or ``2+``: how many partner agencies hold a live record about
  that child dated on or before the period's end (any earlier date, with or
  without an online component).
* ``pseudonyms`` by ``total`` (one cell, ``all``): distinct subject
  pseudonyms (``subject``, not ``previous``) among the records ``events``
  counts, before linkage. It is never below ``children`` / ``total``; the
  difference is how many of those pseudonyms linkage joined to another of
  the same child.
* ``referrals`` by ``agency``: referrals (``event_type`` REFERRAL) in the
  period per partner, with or without an online component;
  ``referrals_online_not_assessed`` by ``agency``: those of them where the
  online component was recorded as not assessed (``online`` NOT_ASSESSED);
  and ``referrals_online_not_recorded`` by ``agency``: those of them whose
  agency's system does not record the online component at all (``online``
  NOT_RECORDED, as the agency's profile says), which are not counted as not
  assessed. Together they show the data gap.

Enumerated dimensions list every value, zeros included (every sex, role,
outcome, taxonomy code and 4Cs cell, vulnerability, agency type, threshold
level, partner, and the subject bases ``NHS_NUMBER``, ``NAME_DOB``,
``LOCAL_ID`` and ``NONE``), so "no cases" is visible; a value outside the
enumeration (a code the taxonomy no longer has, an unlisted agency, another
subject basis such as ``OTHER``) is appended after them, in sorted order, so
nothing is dropped. A code unknown to the taxonomy has the 4Cs cell
``UNMAPPED``. Open dimensions (age band, area) list the values seen among the
period's events.

Each breakdown is then protected on its own with
``hub.disclosure.protect_breakdown``. Additive breakdowns (``ADDITIVE``: every
record or child falls in exactly one cell) are checked against their true total;
the others (the ``total`` breakdowns among them) are audited as if the sum of
their cells were known, which is conservative for overlapping cells. Read side
by side, ``pseudonyms`` and ``children`` give the pseudonyms linkage joined
(their difference): ``pseudonyms`` is withheld when its published count and
that of ``children`` / ``total`` would pin that difference into
``1..threshold`` (with the default rule, rounding to 5 on both never does).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from operator import attrgetter
from typing import TypeVar

from hub.disclosure import DisclosureRule, Suppression, protect_breakdown
from hub.models import AgencyType, Outcome, Role, Sex, Vulnerability
from hub.taxonomy import CELLS, Taxonomy
from hub.trends import (
    ALL,
    CHILDREN,
    EVENTS,
    ONE_AGENCY,
    PSEUDONYMS,
    REFERRALS,
    REFERRALS_NOT_ASSESSED,
    REFERRALS_NOT_RECORDED,
    SUBJECT_BASES,
    SUBJECT_BASIS,
    THRESHOLD_LEVELS,
    TOTAL,
    TWO_OR_MORE,
    UNKNOWN_THRESHOLD,
    UNMAPPED,
)
from streams.records import NOT_RECORDED, RecordVersion

K = TypeVar("K", bound=Hashable)
Key = tuple[str, str]  # (measure, dimension)
Breakdowns = dict[Key, dict[str, int]]

#: Dimensions where a record or child has exactly one value.
SINGLE_VALUED: tuple[str, ...] = (
    "age_band",
    "sex",
    "area",
    "threshold_level",
    "role",
    "outcome",
)
#: Dimensions where a record or child can have several values (or none).
MULTI_VALUED: tuple[str, ...] = ("risk_code", "cell_4c", "vulnerability", "agency_type")

#: Breakdowns whose cells partition the measure's total (each unit in exactly one cell).
#: ``events`` by ``subject_basis`` is one (a record has one subject, or none); it is
#: not in ``SINGLE_VALUED``, which children share, because a linked child can have
#: pseudonyms of several bases. ``pseudonyms`` has only its ``total``, which like every
#: ``total`` is a one-cell breakdown protected on its own.
ADDITIVE: frozenset[Key] = frozenset(
    {(EVENTS, d) for d in (*SINGLE_VALUED, "agency_type", SUBJECT_BASIS)}
    | {(CHILDREN, d) for d in (*SINGLE_VALUED, "known_to_agencies")}
    | {(REFERRALS, "agency"), (REFERRALS_NOT_ASSESSED, "agency")}
    | {(REFERRALS_NOT_RECORDED, "agency")}
)


def is_additive(measure: str, dimension: str) -> bool:
    """True when the breakdown's cells add up to the measure's total (see ``ADDITIVE``)."""
    return (measure, dimension) in ADDITIVE


@dataclass(frozen=True)
class Cell:
    """One published trend cell: ``count`` is None (and ``suppressed`` True) when withheld."""

    measure: str
    dimension: str
    value: str
    count: int | None
    suppressed: bool
    #: Why it is withheld (the audit trail's primary and secondary suppressions), never
    #: published; not part of a cell's equality.
    suppression: Suppression = field(default=Suppression.NONE, compare=False)


#: What one event, or one child, contributes: age band, sex, area, threshold level,
#: role and outcome (single values), then agency types, risk codes and vulnerabilities.
Profile = tuple[
    str, str, str, int | None, str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]
]
_latest = attrgetter("occurred_on", "record_key")


#: Counts per value of each dimension of ``events`` or ``children`` (``dimensions``).
Dimensions = dict[str, Counter[str]]


@dataclass
class Counts:
    """What a period's breakdowns are made from (``breakdowns_from``).

    Counters hold no zero entries: a value with no event is not "seen".
    """

    events: Dimensions  # online events in the period (``count_profile`` of each)
    children: Dimensions  # the period's children (``count_profile`` of ``child_profile``)
    referrals: Counter[tuple[str, str]]  # (agency, online) -> referrals in the period
    bases: Counter[str]  # online events in the period by the basis of their subject
    known: Counter[str]  # the period's children by ``known_to_agencies``
    pseudonyms: int  # distinct subject pseudonyms among the period's online events


def event_profile(r: RecordVersion) -> Profile:
    """What one online event contributes to the ``events`` breakdowns."""
    return (
        r.age_band, r.sex, r.area, r.threshold, r.role, r.outcome,
        (r.agency_type,), r.codes, r.vulnerabilities,
    )  # fmt: skip


def child_profile(records: list[RecordVersion]) -> Profile:
    """What a child contributes, from its online events in the period: single values from
    the latest record; every agency type, code and flag of any."""
    latest = records[0] if len(records) == 1 else max(records, key=_latest)
    return (
        latest.age_band,
        latest.sex,
        latest.area,
        latest.threshold,
        latest.role,
        latest.outcome,
        tuple(sorted({r.agency_type for r in records})),
        tuple(sorted({code for r in records for code in r.codes})),
        tuple(sorted({flag for r in records for flag in r.vulnerabilities})),
    )


def known_to(many: bool) -> str:
    """The ``known_to_agencies`` value of a child."""
    return TWO_OR_MORE if many else ONE_AGENCY


def linked_subjects(records: Iterable[RecordVersion]) -> dict[str, str]:
    """Pseudonym -> the one that stands for its child, for every pseudonym that a
    live record links to another (``previous``: the same child under an earlier key,
    or on another identifier the record carries).

    Linked pseudonyms form groups (a child across several rotations, or linked by
    several agencies); each group is represented by its smallest pseudonym, so the
    answer does not depend on the order of the records.
    """
    parent: dict[str, str] = {}

    def root(node: str) -> str:
        while (up := parent.get(node, node)) != node:
            parent[node] = parent.get(up, up)  # halve the path
            node = up
        return node

    for r in records:
        if r.live and r.subject is not None:
            for earlier in r.previous:
                a, b = root(r.subject), root(earlier)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {node: root(node) for node in parent if root(node) != node}


def _scan(
    records: Iterable[RecordVersion], start: date, end: date, cell_of: Mapping[str, str]
) -> Counts:
    """From scratch: linkage and agencies from every record, then the period's."""
    if start > end:
        raise ValueError(f"period starts ({start}) after it ends ({end})")
    first, last = start.isoformat(), end.isoformat()
    records = list(records)
    same_child = linked_subjects(records)
    first_agency: dict[str, str] = {}  # child -> the first agency seen holding a record
    many: set[str] = set()
    referrals: Counter[tuple[str, str]] = Counter()
    bases: Counter[str] = Counter()
    events: Counter[Profile] = Counter()
    children: dict[str, list[RecordVersion]] = {}  # child -> its online events in the period
    pseudonyms: set[str] = set()
    for r in records:
        occurred = r.occurred_on
        if not r.live or occurred > last:
            continue
        subject = r.subject if r.subject is None else same_child.get(r.subject, r.subject)
        if subject is not None and first_agency.setdefault(subject, r.agency) != r.agency:
            many.add(subject)
        if occurred < first:
            continue
        if r.event_type == "REFERRAL":
            referrals[r.agency, r.online] += 1
        if r.online == "YES":
            events[event_profile(r)] += 1
            bases[r.basis] += 1
            if subject is not None:
                pseudonyms.add(r.subject)  # type: ignore[arg-type]
                children.setdefault(subject, []).append(r)
    return Counts(
        _expand(events, cell_of),
        _expand(Counter(map(child_profile, children.values())), cell_of),
        referrals,
        bases,
        Counter(known_to(child in many) for child in children),
        len(pseudonyms),
    )


def dimensions() -> Dimensions:
    """Empty counts for every dimension of ``events`` or ``children``."""
    return {d: Counter() for d in (TOTAL, *SINGLE_VALUED, *MULTI_VALUED)}


def count_profile(dims: Dimensions, profile: Profile, n: int, cell_of: Mapping[str, str]) -> None:
    """Add ``n`` units of ``profile`` to every dimension's counts (``n`` below 0
    retracts them), leaving no zero entry. ``cell_of``: risk code -> 4Cs cell."""
    age, sx, ar, level, rl, out, types, codes, flags = profile
    bump(dims[TOTAL], ALL, n)
    bump(dims["age_band"], age, n)
    bump(dims["sex"], sx, n)
    bump(dims["area"], ar, n)
    bump(dims["threshold_level"], _threshold(level), n)
    bump(dims["role"], rl, n)
    bump(dims["outcome"], out, n)
    for values, dimension in (
        (types, "agency_type"),
        (codes, "risk_code"),
        (flags, "vulnerability"),
    ):
        counter = dims[dimension]
        for value in values:
            bump(counter, value, n)
    cells = dims["cell_4c"]
    for cell in {cell_of.get(code, UNMAPPED) for code in codes}:
        bump(cells, cell, n)


def bump(counter: Counter[K], key: K, n: int) -> None:
    """Add ``n`` to ``key``'s count (below 0 to take away), leaving no zero entry."""
    total = counter[key] + n
    if total:
        counter[key] = total
    else:
        del counter[key]


def _expand(profiles: Mapping[Profile, int], cell_of: Mapping[str, str]) -> Dimensions:
    """Counts per dimension value from counts per profile."""
    dims = dimensions()
    for profile, n in profiles.items():
        count_profile(dims, profile, n, cell_of)
    return dims


def _threshold(level: int | None) -> str:
    return UNKNOWN_THRESHOLD if level is None else str(level)


def _ordered(values: Sequence[str], counts: Mapping[str, int]) -> dict[str, int]:
    """Every value of ``values`` (zeros included), then any other value seen, sorted."""
    ordered = {value: counts.get(value, 0) for value in values}
    for value in sorted(set(counts) - set(values)):
        ordered[value] = counts[value]
    return ordered


def true_breakdowns(
    records: Iterable[RecordVersion],
    start: date,
    end: date,
    taxonomy: Taxonomy,
    partners: Sequence[str],
) -> Breakdowns:
    """The true counts of every breakdown for the period ``start..end`` (both included).

    Returns (measure, dimension) -> {value: true count}, keys sorted by measure
    then dimension, values in the dimension's fixed order (see the module
    docstring for what each measure counts). Withdrawn records count nowhere.
    """
    return breakdowns_from(_scan(records, start, end, taxonomy.codes), taxonomy, partners)


def breakdowns_from(counts: Counts, taxonomy: Taxonomy, partners: Sequence[str]) -> Breakdowns:
    """The breakdowns of a period from its ``Counts`` (see ``true_breakdowns``).

    ``streams.index.RecordIndex`` keeps each period's ``Counts`` up to date as
    versions arrive and gives them here, so a release does not read the history.
    """
    events = dict(counts.events)
    children = dict(counts.children)
    children["known_to_agencies"] = counts.known
    referrals: Counter[str] = Counter()
    not_assessed: Counter[str] = Counter()
    not_recorded: Counter[str] = Counter()
    for (agency, online), n in counts.referrals.items():
        referrals[agency] += n
        if online == "NOT_ASSESSED":
            not_assessed[agency] += n
        elif online == NOT_RECORDED:
            not_recorded[agency] += n
    values: dict[str, Sequence[str]] = {
        TOTAL: (ALL,),
        "agency_type": tuple(AgencyType),
        "age_band": sorted(events["age_band"]),
        "sex": tuple(Sex),
        "area": sorted(events["area"]),
        "threshold_level": THRESHOLD_LEVELS,
        "role": tuple(Role),
        "outcome": tuple(Outcome),
        "risk_code": tuple(taxonomy.codes),
        "cell_4c": CELLS,
        "vulnerability": tuple(Vulnerability),
        "known_to_agencies": (ONE_AGENCY, TWO_OR_MORE),
        SUBJECT_BASIS: SUBJECT_BASES,
    }
    events[SUBJECT_BASIS] = counts.bases
    result: Breakdowns = {}
    for dimension, seen in events.items():
        result[EVENTS, dimension] = _ordered(values[dimension], seen)
    for dimension, seen in children.items():
        result[CHILDREN, dimension] = _ordered(values[dimension], seen)
    result[PSEUDONYMS, TOTAL] = {ALL: counts.pseudonyms}
    result[REFERRALS, "agency"] = _ordered(partners, referrals)
    result[REFERRALS_NOT_ASSESSED, "agency"] = _ordered(partners, not_assessed)
    result[REFERRALS_NOT_RECORDED, "agency"] = _ordered(partners, not_recorded)
    return dict(sorted(result.items(), key=lambda item: item[0]))


def protect_cells(breakdowns: Mapping[Key, Mapping[str, int]], rule: DisclosureRule) -> list[Cell]:
    """Apply the disclosure rule to each breakdown on its own; cells in input order.

    An additive breakdown is checked against its measure's true total (the
    ``total`` breakdown of that measure when given, else the sum of its cells):
    a mismatch raises ``ValueError``. A non-additive one is audited as if the
    sum of its cells were known. A small ``total`` is withheld like any cell.
    ``pseudonyms`` is then audited against ``children`` (``_joined_derivable``).
    """
    cells: list[Cell] = []
    for (measure, dimension), counts in breakdowns.items():
        if is_additive(measure, dimension):
            totals = breakdowns.get((measure, TOTAL))
            total = totals[ALL] if totals is not None else sum(counts.values())
            protected = protect_breakdown(counts, rule, total=total)
        else:
            protected = protect_breakdown(counts, rule)
        cells.extend(
            Cell(measure, dimension, cell.value, cell.count, cell.count is None, cell.suppression)
            for cell in protected.cells
        )
    shown = {c.measure: c.count for c in cells if (c.dimension, c.value) == (TOTAL, ALL)}
    if _joined_derivable(shown.get(PSEUDONYMS), shown.get(CHILDREN), rule):
        cells = [
            replace(c, count=None, suppressed=True, suppression=Suppression.SECONDARY)
            if c.measure == PSEUDONYMS and not c.suppressed
            else c
            for c in cells
        ]
    return cells


def _joined_derivable(pseudonyms: int | None, children: int | None, rule: DisclosureRule) -> bool:
    """True when the published totals of pseudonyms and children pin the pseudonyms
    linkage joined (their difference, never below 0) into ``1..threshold``."""
    if pseudonyms is None or children is None:
        return False
    p_low, p_high = rule.possible_true_counts(pseudonyms)
    c_low, c_high = rule.possible_true_counts(children)
    return rule.is_small(max(0, p_low - c_high)) and rule.is_small(p_high - c_low)


def period_cells(
    records: Iterable[RecordVersion],
    start: date,
    end: date,
    taxonomy: Taxonomy,
    partners: Sequence[str],
    rule: DisclosureRule,
) -> list[Cell]:
    """The cells to publish for ``start..end``: ``true_breakdowns`` then ``protect_cells``.

    Ordered by measure, then dimension (alphabetically), then the dimension's
    value order; the same records in any order give the same cells.
    """
    return protect_cells(true_breakdowns(records, start, end, taxonomy, partners), rule)
