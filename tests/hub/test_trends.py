"""The trends fold (``hub.trends``): per publication and period, the latest revision,
whole; and every reader of the trends topic agrees on it: the publisher's TrendsLog,
its Prometheus exporter, `hub subscribe`'s rows and the board pack."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hub.agreement.model import load_agreement
from hub.codec import Codec
from hub.models import TrendSnapshot
from hub.periods import parse_period
from hub.report.cells import Status
from hub.report.pack import Pack
from hub.resources import deploy
from hub.subscribe import rows_from
from hub.trends import Published, latest
from streams.publish.exporter import TrendsCollector
from tests.support.trends import OCT, RELEASES, REVISED, SEP, offline_trends_log, snapshot

#: A cell as every reader can say it: (publication, period start, measure, dimension,
#: value, count, suppressed, revision).
Seen = tuple[str, str, str, str, str, int | None, bool, int]


def decoded(snapshots: Iterable[TrendSnapshot]) -> list[dict[str, Any]]:
    """As a reader of the trends topic decodes them."""
    codec = Codec("trend_snapshot")
    return [codec.decode(codec.encode(s.to_avro())) for s in snapshots]


def seen(snapshots: Iterable[Mapping[str, Any]]) -> set[Seen]:
    return {
        (
            s["publication"],
            str(s["period_start"]),
            s["measure"],
            s["dimension"],
            s["value"],
            s["count"],
            s["suppressed"],
            s["revision"],
        )
        for s in snapshots
    }


#: What RELEASES publish now: September's revision 0; October's revision 1 and only its
#: cells (revision 0's SEXTORTION is gone).
EXPECTED: set[Seen] = {
    ("monthly", "2026-09-01", "events", "total", "all", 90, False, 0),
    ("monthly", "2026-09-01", "events", "risk_code", "GROOMING", 30, False, 0),
    ("monthly", "2026-09-01", "events", "risk_code", "CYBERBULLYING", None, True, 0),
    ("monthly", "2026-10-01", "events", "total", "all", 105, False, 1),
    ("monthly", "2026-10-01", "events", "risk_code", "GROOMING", 45, False, 1),
    ("monthly", "2026-10-01", "events", "risk_code", "CYBERBULLYING", None, True, 1),
}


def test_the_latest_revision_of_a_period_is_kept_whole() -> None:
    published = Published(decoded(RELEASES))
    assert seen(published.snapshots()) == EXPECTED
    october = published.periods["monthly", OCT]
    assert (october.revision, october.published_at) == (1, REVISED)
    assert october.cells == {
        ("events", "total", "all"): (105, False),
        ("events", "risk_code", "GROOMING"): (45, False),
        ("events", "risk_code", "CYBERBULLYING"): (None, True),
    }
    assert published.periods["monthly", SEP].revision == 0


def test_the_order_of_the_snapshots_does_not_matter() -> None:
    snapshots = decoded(RELEASES)
    for seed in range(20):
        shuffled = random.Random(seed).sample(snapshots, len(snapshots))
        assert seen(latest(shuffled)) == EXPECTED
    # Revision 1 first: revision 0's cells (SEXTORTION among them) never come back.
    revision_1, revision_0 = [s for s in snapshots if s["revision"]], snapshots[:7]
    assert seen(latest([*revision_1, *revision_0])) == EXPECTED


def test_add_says_whether_a_snapshot_is_published_now() -> None:
    first, second = decoded([RELEASES[4], RELEASES[8]])  # October GROOMING: 0, then 1
    published = Published()
    assert published.add(first)
    assert published.add(second)
    assert not published.add(first)  # an earlier revision: superseded
    assert seen(published.snapshots()) == {
        ("monthly", "2026-10-01", "events", "risk_code", "GROOMING", 45, False, 1)
    }


def test_snapshots_of_one_revision_add_up_and_publications_are_apart() -> None:
    quarterly = snapshot(
        date(2026, 7, 1), "all", 300, dimension="total", publication="board-quarterly"
    )
    again = snapshot(OCT, "GROOMING", 46, revision=1, published_at=REVISED)  # the same cell
    published = Published(decoded([*RELEASES, quarterly, again]))
    assert published.periods["monthly", OCT].cells["events", "risk_code", "GROOMING"] == (46, False)
    assert len(published.periods["monthly", OCT].cells) == 3
    assert published.periods["board-quarterly", date(2026, 7, 1)].revision == 0


def test_a_copy_does_not_change_with_the_fold() -> None:
    published = Published(decoded(RELEASES[:7]))
    copy = published.copy()
    published.update(decoded(RELEASES[7:]))
    assert copy.periods["monthly", OCT].revision == 0
    assert len(copy.periods["monthly", OCT].cells) == 4
    assert published.periods["monthly", OCT].revision == 1


def test_rows_in_either_shape_fold_the_same() -> None:
    """A row of `published_rows` carries ISO strings where a decoded snapshot has dates."""
    rows = [
        {
            **s,
            "period_start": s["period_start"].isoformat(),
            "period_end": s["period_end"].isoformat(),
            "published_at": s["published_at"].isoformat(),
        }
        for s in decoded(RELEASES)
    ]
    assert seen(latest(rows)) == EXPECTED


# --- every reader agrees ------------------------------------------------------------


def exporter_seen(registry: CollectorRegistry) -> set[Seen]:
    """The history gauges read back as cells (the revision from hub_trend_revision is the
    latest period's; September was released once)."""
    revision = registry.get_sample_value("hub_trend_revision", {"publication": "monthly"})
    counts: dict[tuple[str, ...], float] = {}
    flags: dict[tuple[str, ...], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            key = tuple(sample.labels.values())
            if sample.name == "hub_trend_history_published":
                counts[key] = sample.value
            elif sample.name == "hub_trend_history_suppressed":
                flags[key] = sample.value
    assert not set(counts) & set(flags)  # a cell is published or suppressed, never both
    assert set(flags.values()) <= {1.0}  # only suppressed cells have the series
    cells: set[Seen] = set()
    for key in counts.keys() | flags.keys():
        flag = flags.get(key, 0.0)
        publication, label, measure, dimension, value = key
        start = parse_period(label)[1][0]
        count = counts.get(key)
        cells.add(
            (
                publication,
                start.isoformat(),
                measure,
                dimension,
                value,
                None if count is None else int(count),
                bool(flag),
                int(revision or 0) if start == OCT else 0,
            )
        )
    return cells


def pack_seen(rows: list[dict[str, Any]]) -> set[Seen]:
    agreement = load_agreement(deploy("agreement", "example.yaml"))
    cells: set[Seen] = set()
    for label in ("2026-09", "2026-10"):
        pack = Pack(rows, agreement, label)
        cells |= seen(pack.period_rows())
        assert pack.revision() == (1 if label == "2026-10" else 0)
    return cells


@pytest.mark.parametrize("order", ["offsets", "reversed"])
def test_every_reader_shows_the_same_cells_when_a_revision_drops_one(
    monkeypatch: pytest.MonkeyPatch, order: str
) -> None:
    releases = RELEASES if order == "offsets" else RELEASES[::-1]
    snapshots = decoded(releases)

    # The publisher's view of the topic, and the exporter on it.
    trends = offline_trends_log(monkeypatch, releases)
    assert seen(trends.copy().snapshots()) == EXPECTED
    agreement = load_agreement(deploy("agreement", "example.yaml"))
    registry = CollectorRegistry()
    now = datetime(2026, 11, 20, tzinfo=UTC)
    registry.register(TrendsCollector(trends, agreement, lambda: now))
    assert exporter_seen(registry) == EXPECTED

    # `hub subscribe` / published_rows.
    rows = rows_from(snapshots)
    assert seen(rows) == EXPECTED
    assert [r["period_start"] for r in rows] == sorted(r["period_start"] for r in rows)

    # The board pack, from rows of every snapshot (folded or not).
    unfolded = [
        {**s, "period_start": s["period_start"].isoformat(), "published_at": "2026-11-10"}
        for s in snapshots
    ]
    assert pack_seen(unfolded) == EXPECTED
    assert pack_seen(rows) == EXPECTED
    pack = Pack(unfolded, agreement, "2026-10")
    assert pack.cells.reading(OCT, "events", "risk_code", "SEXTORTION").status is Status.MISSING
    assert pack.cells.reading(OCT, "events", "risk_code", "GROOMING").count() == 45


def test_no_reader_keeps_a_dropped_cell_of_any_earlier_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three revisions, each dropping or bringing back cells: only the last one counts."""
    values = ("GROOMING", "SEXTORTION", "CYBERBULLYING", "CSAM")
    kept = [values, values[:2], (values[0], values[3])]
    releases = [
        snapshot(OCT, value, 10 * (revision + 1) + i, revision=revision)
        for revision, cells in enumerate(kept)
        for i, value in enumerate(cells)
    ]
    expected = {("GROOMING", 30), ("CSAM", 31)}
    snapshots = decoded(releases)
    for seed in range(50):
        ordering = random.Random(seed).sample(snapshots, len(snapshots))
        assert {(s["value"], s["count"]) for s in latest(ordering)} == expected
    rows = rows_from(snapshots)
    assert {(r["value"], r["count"]) for r in rows} == expected
    trends = offline_trends_log(monkeypatch, releases)
    assert {
        (v, c) for (_, _, v), (c, _) in trends.periods["monthly", OCT].cells.items()
    } == expected
