"""The ground truth, counted from the generator's own records (never from the files,
never with the hub's code), and what the adapter should say about each file.

Counts, per month, over each record's final state (last content wins; a
record withdrawn, deleted or itself a withdrawal counts nowhere):

* ``events`` / ``risk_code``: live records dated in the month whose online
  component is YES, once per distinct risk code; ``events`` / ``total``: those
  records;
* ``children`` / ``risk_code``: distinct true children among those records,
  once per code any of their records in the month has; ``children`` /
  ``total``: those children;
* ``children`` / ``known_to_agencies``: each of those children under ``1`` or
  ``2+``, by how many agencies hold a live record about the child (any online
  status) dated on or before the month's end.

Records with no child (anonymous counselling sessions) count in events only.
The disclosure rule is applied here on its own terms: 1..7 withheld, anything
else rounded to the nearest 5 (halves up), and 0 published as 0.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from tests.e2e.agencies import YES, Content
from tests.e2e.exports import MONTHS, Export, Record, Scenario, month_end, month_start

CellKey = tuple[str, str, str, str]  # measure, dimension, value, period (YYYY-MM)
MEASURES: frozenset[tuple[str, str]] = frozenset(
    {
        ("events", "total"),
        ("events", "risk_code"),
        ("children", "total"),
        ("children", "risk_code"),
        ("children", "known_to_agencies"),
    }
)
SUPPRESS_AT_OR_BELOW = 7
ROUND_TO = 5


def true_counts(scenario: Scenario) -> dict[CellKey, int]:
    """Every non-zero cell of the measures above, for every month."""
    live = [r for r in scenario.records if r.live]
    cells: Counter[CellKey] = Counter()
    for month, period in enumerate(MONTHS):
        start, end = month_start(month), month_end(month)
        online = [r for r in live if r.final.online == YES and start <= r.when.date() <= end]
        codes_of: dict[int, set[str]] = defaultdict(set)
        for record in online:
            cells["events", "total", "all", period] += 1
            for code in record.codes:
                cells["events", "risk_code", code, period] += 1
            if record.child is not None:
                codes_of[record.child.number].update(record.codes)
        for child, codes in codes_of.items():
            cells["children", "total", "all", period] += 1
            for code in codes:
                cells["children", "risk_code", code, period] += 1
            agencies = {
                r.agency.name
                for r in live
                if r.child is not None and r.child.number == child and r.when.date() <= end
            }
            cells["children", "known_to_agencies", "2+" if len(agencies) > 1 else "1", period] += 1
    return dict(cells)


def published_value(true: int) -> int | None:
    """What the disclosure rule lets out for a true count: None when it must be withheld."""
    if true == 0:
        return 0
    if true <= SUPPRESS_AT_OR_BELOW:
        return None
    rounded = (2 * true + ROUND_TO) // (2 * ROUND_TO) * ROUND_TO
    if rounded <= SUPPRESS_AT_OR_BELOW:  # never rounds into the withheld range
        rounded = (SUPPRESS_AT_OR_BELOW // ROUND_TO + 1) * ROUND_TO
    return rounded


# --- what the adapter should report -------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    read: int
    new: int
    corrected: int
    withdrawn: int
    unchanged: int
    rejected: int
    unlinked: int


_GONE = Content("", "", (), "", withdrawn=True)  # a record its agency no longer holds


class AdapterMemory:
    """What the adapter knows it has sent (kept in its outbox), per agency.

    Per valid row: a withdrawal row (or a row now marked withdrawn) counts as
    withdrawn unless it is exactly what was sent before; otherwise new (never
    sent), unchanged (sent with this content) or corrected (sent with other
    content). In a full snapshot, every record sent and still live whose row is
    missing (present but rejected does not count as missing) is withdrawn too.
    A withdrawal row withdraws every record sharing its record id (camhs: the
    referral's activities). Losing the outbox forgets everything.
    """

    def __init__(self) -> None:
        self.sent: dict[str, dict[tuple[str, ...], Content]] = {}

    def forget(self) -> None:
        self.sent.clear()

    def expect(self, export: Export) -> Summary:
        sent = self.sent.setdefault(export.agency.name, {})
        tally: Counter[str] = Counter()
        present = set()
        for row in export.rows:
            present.add(row.identity)
            if row.content is None:
                tally["rejected"] += 1
                continue
            tally["unlinked"] += not row.linkable
            kind = _kind(sent.get(row.identity), row.content)
            tally[kind] += 1
            if kind == "withdrawn":
                for identity, content in sent.items():
                    if identity[0] == row.identity[0] and not content.withdrawn:
                        sent[identity] = _GONE
            sent[row.identity] = row.content
        if export.agency.full:
            for identity, content in sent.items():
                if identity not in present and not content.withdrawn:
                    tally["withdrawn"] += 1
                    sent[identity] = _GONE
        return Summary(
            read=len(export.rows),
            new=tally["new"],
            corrected=tally["corrected"],
            withdrawn=tally["withdrawn"],
            unchanged=tally["unchanged"],
            rejected=tally["rejected"],
            unlinked=tally["unlinked"],
        )


def _kind(before: Content | None, now: Content) -> str:
    if before == now:
        return "unchanged"
    if now.withdrawn:
        return "withdrawn"
    return "new" if before is None else "corrected"


def late_records(scenario: Scenario) -> list[Record]:
    return [r for r in scenario.records if r.late]
