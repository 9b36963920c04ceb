"""Publication cost against the length of the history: one period's cells, from every
record (the from-scratch count) and from the publisher's index, side by side.

Run from the repository root::

    .venv/bin/python -m benchmarks.publish_history [--sizes 10000,100000,1000000]

For each size N it builds, in a fresh child process, N record versions over 36
months, about ``--period-events`` of them in the month published and the rest
in the 35 before it (about 70 % with an online component, a fifth referrals, corrections
and withdrawals of earlier records, one record in twenty linking its child to
a second pseudonym), encoded as the workers' changelog holds them (JSON
batches of 500), and times, in the same process:

* decoding the changelog: ``streams.records.decode_batch`` of
  every batch (what every reader of the changelog pays);
* the from-scratch path: ``streams.records.merge`` into a dict, then
  ``streams.aggregate.period_cells`` of one month from every record;
* the index: ``RecordIndex.merge`` of the same versions, then that month's
  cells from the index (``breakdowns`` + ``protect_cells``), cold;
* a scheduled time after a day of changes (0.1 % of N new versions: new
  records dated in the last three months, and one in twenty a correction or
  withdrawal of a record of any date), with every released period's counts
  kept by the index (36 months and 13 quarters): merging the day's versions
  (each retracted from and added to the counts it reaches), then the cells of
  the periods whose counts changed; beside recomputing every period from
  scratch (``--scratch-recheck-max`` limits the size at which that is run),
  which must give the same cells;
* resident memory (VmRSS) after the versions are decoded into a dict (the
  from-scratch publisher's state), after the index is built beside it with one
  period's counts, and with every released period's.

Nothing is asserted; the figures are reported. No broker is needed. See
docs/benchmarks.md for the figures measured on the project machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

from adapters.synth.cases import DISTRICTS, EVENT_TYPES, OUTCOMES, RISK_WEIGHTS
from hub.disclosure import DisclosureRule
from hub.periods import period_starting
from hub.taxonomy import Taxonomy
from streams.aggregate import Cell, period_cells, protect_cells
from streams.index import RecordIndex
from streams.records import RecordVersion, decode_batch, encode_batch, merge

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parent.parent
BATCH = 500
MONTHS = 36
LAST_MONTH = date(2026, 10, 1)
AGENCIES = {
    "camhs": "CAMHS",
    "spa": "CHILDRENS_SOCIAL_CARE",
    "police": "POLICE",
    "school-nursing": "SCHOOL_NURSING",
    "counselling": "COUNSELLING",
    "youth-service": "YOUTH_SERVICE",
    "education": "EDUCATION",
    "voluntary": "VOLUNTARY_SECTOR",
}
AGE_BANDS = ("5-7", "8-10", "11-13", "14-15", "16-17", "18-25", "unknown")
VULNERABILITIES = ("SEN", "LOOKED_AFTER", "YOUNG_CARER", "NOT_IN_EDUCATION", "MENTAL_HEALTH_NEED")
ROLES = ("VICTIM", "VICTIM", "VICTIM", "PERPETRATOR", "BOTH", "UNKNOWN")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def timed(call: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


class History:
    """Synthetic record versions: a region's case history over ``MONTHS`` months."""

    def __init__(self, seed: int, count: int, period_events: int) -> None:
        self.rng = random.Random(seed)
        #: The share of new records dated in the last month (the one published).
        self.in_last = min(period_events / count, 1.0)
        self.children = [f"{self.rng.getrandbits(256):064x}" for _ in range(max(count // 4, 1))]
        self.first = date(LAST_MONTH.year - MONTHS // 12, LAST_MONTH.month, 1)
        self.days = (LAST_MONTH - self.first).days  # before the last month
        self.codes, self.weights = zip(*RISK_WEIGHTS.items(), strict=True)
        self.latest: dict[str, RecordVersion] = {}
        self.late = False
        self.keys: list[str] = []

    def version(self) -> RecordVersion:
        """A new record, or (one time in twenty) a correction or withdrawal of an earlier one."""
        rng = self.rng
        if self.keys and rng.random() < 0.05:
            held = self.latest[rng.choice(self.keys)]
            if rng.random() < 0.3:
                changed = held._replace(
                    version=held.version + 1, live=False, event_type="WITHDRAWN"
                )
            else:
                outcome = rng.choice(OUTCOMES)
                changed = held._replace(version=held.version + 1, outcome=outcome, live=True)
            self.latest[held.record_key] = changed
            return changed
        agency = rng.choice(list(AGENCIES))
        subject = None if rng.random() < 0.03 else rng.choice(self.children)
        online = rng.choices(("YES", "NO", "NOT_ASSESSED"), (70, 20, 10))[0]
        if self.late:  # a day's new records: dated in the last three months
            day = LAST_MONTH - timedelta(days=rng.randrange(-27, 61))
        elif rng.random() < self.in_last:
            day = LAST_MONTH + timedelta(days=rng.randrange(28))
        else:
            day = self.first + timedelta(days=rng.randrange(self.days))
        key = f"{agency}:{len(self.keys)}"
        version = RecordVersion(
            record_key=key,
            version=1,
            live=True,
            agency=agency,
            agency_type=AGENCIES[agency],
            event_type=rng.choice(EVENT_TYPES),
            subject=subject,
            basis="NHS_NUMBER" if subject else "NONE",
            occurred_on=day.isoformat(),
            age_band=rng.choice(AGE_BANDS),
            sex=rng.choice(("FEMALE", "MALE", "UNKNOWN")),
            area=rng.choice(DISTRICTS),
            threshold=rng.choice((1, 2, 3, 4, None)),
            vulnerabilities=tuple(sorted(rng.sample(VULNERABILITIES, rng.randrange(3)))),
            online=online,
            codes=tuple(sorted(set(rng.choices(self.codes, self.weights, k=rng.randrange(1, 3))))),
            role=rng.choice(ROLES),
            outcome=rng.choice(OUTCOMES),
            previous=(rng.choice(self.children),) if subject and rng.random() < 0.05 else (),
        )
        self.keys.append(key)
        self.latest[key] = version
        return version

    def batches(self, count: int) -> list[bytes]:
        versions = [self.version() for _ in range(count)]
        return [
            encode_batch(versions[i : i + BATCH], {"cases.camhs": i})
            for i in range(0, len(versions), BATCH)
        ]


def released_periods() -> list[tuple[date, date]]:
    months = []
    month = LAST_MONTH
    for _ in range(MONTHS):
        months.append(period_starting("month", month))
        month = (month - timedelta(days=1)).replace(day=1)
    quarters = {period_starting("quarter", start.replace(month=(start.month - 1) // 3 * 3 + 1))
                for start, _ in months}  # fmt: skip
    return sorted({*months, *quarters})


def measure(count: int, period_events: int, scratch_recheck_max: int) -> dict[str, Any]:
    """Everything for one size, in this (fresh) process."""
    taxonomy, rule = Taxonomy(), DisclosureRule()
    partners = list(AGENCIES)
    period = period_starting("month", LAST_MONTH)
    history = History(seed=7, count=count, period_events=period_events)
    say(f"  building {count:,} versions ...")
    batches = history.batches(count)
    gc.collect()
    base = rss_mb()
    out: dict[str, Any] = {"versions": count}

    def decode() -> list[list[RecordVersion]]:
        return [decode_batch(b)[0] for b in batches]

    out["decode_s"], decoded = timed(decode)
    records: dict[str, RecordVersion] = {}

    def fold() -> None:
        for versions in decoded:
            merge(records, versions)

    out["scratch_merge_s"], _ = timed(fold)
    gc.collect()
    out["rss_dict_mb"] = rss_mb() - base
    out["scratch_period_s"], expected = timed(
        lambda: period_cells(records.values(), *period, taxonomy, partners, rule)
    )
    index = RecordIndex(taxonomy)
    out["index_merge_s"], _ = timed(lambda: [index.merge(vs) for vs in decoded])
    gc.collect()
    out["rss_dict_and_index_mb"] = rss_mb() - base
    out["records"] = len(records)

    def from_index(start: date, end: date) -> list[Cell]:
        return protect_cells(index.breakdowns(start, end, partners), rule)

    out["index_period_s"], cells = timed(lambda: from_index(*period))
    out["period_records"] = sum(1 for _ in index.in_period(*period))
    if cells != expected:
        raise RuntimeError("the index's cells differ from the from-scratch cells")

    out.update(
        scheduled_time(history, index, records, count, scratch_recheck_max, from_index, base)
    )
    return out


def scheduled_time(
    history: History,
    index: RecordIndex,
    records: dict[str, RecordVersion],
    count: int,
    scratch_recheck_max: int,
    from_index: Callable[[date, date], list[Cell]],
    base: float,
) -> dict[str, Any]:
    """Every released period re-checked after a day of changes, as the scheduler does."""
    taxonomy, rule, partners = Taxonomy(), DisclosureRule(), list(AGENCIES)
    out: dict[str, Any] = {}
    periods = released_periods()
    cache = {p: (index.changes(*p), from_index(*p)) for p in periods}
    history.late = True
    out["day_versions"] = max(count // 1000, 1)
    day = [decode_batch(b)[0] for b in history.batches(out["day_versions"])]
    out["day_merge_s"], _ = timed(lambda: [index.merge(vs) for vs in day])
    for vs in day:
        merge(records, vs)

    def recheck() -> int:
        computed = 0
        for p in periods:
            changes = index.changes(*p)
            if cache[p][0] != changes:
                cache[p] = (changes, from_index(*p))
                computed += 1
        return computed

    out["index_recheck_s"], out["recomputed_periods"] = timed(recheck)
    gc.collect()
    out["rss_all_periods_mb"] = rss_mb() - base
    out["periods"] = len(periods)
    if count <= scratch_recheck_max:
        out["scratch_recheck_s"], fresh = timed(
            lambda: {
                p: period_cells(records.values(), *p, taxonomy, partners, rule) for p in periods
            }
        )
        wrong = [p for p in periods if fresh[p] != cache[p][1]]
        if wrong:
            raise RuntimeError(f"cached cells differ from scratch for {wrong[0]}")
    return out


def report(results: list[dict[str, Any]]) -> None:
    print("\nPublication against history (seconds; RSS growth in MB)\n")
    head = (
        "| versions | records | in the month | decode | scratch: merge + 1 month"
        " | index: merge | index: 1 month | a day's versions into the index"
        " | cells of the periods they changed | all periods from scratch"
        " | RSS dict | + index, 1 period | + all periods |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in results:
        scratch = r.get("scratch_recheck_s")
        print(
            f"| {r['versions']:,} | {r['records']:,} | {r['period_records']:,} |"
            f" {r['decode_s']:.2f} |"
            f" {r['scratch_merge_s']:.2f} + {r['scratch_period_s']:.3f} |"
            f" {r['index_merge_s']:.2f} | {r['index_period_s']:.3f} |"
            f" {r['day_merge_s']:.3f} ({r['day_versions']:,}) |"
            f" {r['index_recheck_s']:.3f} ({r['recomputed_periods']} of {r['periods']}) |"
            f" {'-' if scratch is None else f'{scratch:.2f}'} |"
            f" {r['rss_dict_mb']:.0f} | {r['rss_dict_and_index_mb']:.0f} |"
            f" {r['rss_all_periods_mb']:.0f} |"
        )
    if len(results) > 1:
        small, large = results[0], results[-1]
        print(
            f"\none month's cells from the index: {large['index_period_s']:.3f} s at"
            f" {large['versions']:,} versions, {small['index_period_s']:.3f} s at"
            f" {small['versions']:,} ({large['index_period_s'] / small['index_period_s']:.1f}x);"
            f" from scratch {large['scratch_period_s'] / small['scratch_period_s']:.1f}x"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.publish_history", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--sizes", default="10000,100000,1000000", help="versions, comma-separated")
    parser.add_argument(
        "--scratch-recheck-max",
        type=int,
        default=100_000,
        help="largest size at which every period is also recomputed from scratch",
    )
    parser.add_argument(
        "--period-events",
        type=int,
        default=3_000,
        help="new records dated in the month published, whatever the size (about)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(measure(args.one, args.period_events, args.scratch_recheck_max)))
        return 0
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes must be integers separated by commas, not {args.sizes!r}")
    if min(sizes) < 1:
        parser.error("--sizes must be positive")
    results = []
    for size in sizes:
        say(f"{size:,} versions of history (child process) ...")
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.publish_history",
                "--one",
                str(size),
                "--scratch-recheck-max",
                str(args.scratch_recheck_max),
                "--period-events",
                str(args.period_events),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            check=False,
        )
        if child.returncode != 0:
            say(f"the run with {size:,} versions failed (exit {child.returncode})")
            return 1
        results.append(json.loads(child.stdout))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
