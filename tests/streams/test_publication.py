"""Publication end to end on the real broker: the published cells and revisions equal
those computed once from the records sent, with and without workers SIGKILLed."""

from __future__ import annotations

import csv
import io
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from hub.agreement.model import Agreement, load_agreement
from hub.audit import read_entries
from hub.codec import Codec
from hub.errors import PublishError
from hub.settings import HubSettings
from streams.publish.publisher import Publisher, Release, cell_key
from tests.support.agreements import partner_ids
from tests.support.attacker import attack
from tests.support.processes import WorkerProcess, free_port, hub
from tests.support.scenario import Scenario, read_trends, send

LONDON = ZoneInfo("Europe/London")
JUL = (date(2026, 7, 1), date(2026, 7, 31))
AUG = (date(2026, 8, 1), date(2026, 8, 31))
SEP = (date(2026, 9, 1), date(2026, 9, 30))
OCT = (date(2026, 10, 1), date(2026, 10, 31))
NOV = (date(2026, 11, 1), date(2026, 11, 30))
Q3 = (date(2026, 7, 1), date(2026, 9, 30))


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


def changed(releases: list[Release]) -> dict[tuple[str, date], int]:
    return {(r.publication, r.period[0]): r.revision for r in releases if r.changed}


class Published:
    """The trends topic read back: the latest value per key, decoded."""

    def __init__(self, settings: HubSettings) -> None:
        self.raw = read_trends(settings)
        codec = Codec("trend_snapshot")
        self.latest = {key: codec.decode(value) for key, value in self.raw}

    def period(self, publication: str, period: tuple[date, date]) -> dict[bytes, dict]:  # type: ignore[type-arg]
        return {
            key: snapshot
            for key, snapshot in self.latest.items()
            if snapshot["publication"] == publication and snapshot["period_start"] == period[0]
        }


def assert_period(
    published: Published,
    publication: str,
    period: tuple[date, date],
    scenario: Scenario,
    agreement: Agreement,
    revision: int,
    busy: bool = True,
) -> None:
    expected = scenario.expected(
        period,
        agreement.taxonomy,
        [p.id for p in agreement.partners],
        agreement.disclosure,
    )
    cells = published.period(publication, period)
    assert len(cells) == len(expected)
    hidden_beside_others = 0  # published alone, but hidden against the rest of the topic
    for cell in expected:
        snapshot = cells[cell_key(publication, period, cell)]
        if snapshot["suppressed"] and not cell.suppressed:
            hidden_beside_others += 1
        else:
            assert (snapshot["count"], snapshot["suppressed"]) == (cell.count, cell.suppressed)
        assert snapshot["revision"] == revision
        assert snapshot["period_end"] == period[1]
    assert hidden_beside_others <= len(expected) // 20, (publication, period)
    if busy:  # enough data that many cells are published, not suppressed
        assert sum(1 for c in expected if c.count) > len(expected) // 3, (publication, period)
    else:
        assert all(c.count == 0 for c in expected)


def assert_safe(published: Published, scenario: Scenario, threshold: int) -> None:
    for snapshot in published.latest.values():
        count = snapshot["count"]
        assert count is None or not 1 <= count <= threshold, snapshot
        assert (count is None) == snapshot["suppressed"]
    # Every revision on the topic, months and quarter together, to the independent attacker.
    codec = Codec("trend_snapshot")
    found = attack(codec.decode(value) for _, value in published.raw).findings
    assert [f for f in found if f.kind != "zero"] == [], found[:10]
    everything = b"".join(k + v for k, v in published.raw)
    for child in scenario.children:
        assert child.encode() not in everything
        assert bytes.fromhex(child) not in everything


def late_data(scenario: Scenario, first: list) -> list:  # type: ignore[type-arg]
    """After the first publication: new October records, corrections and withdrawals of
    October records, and a few September records that arrive very late."""
    october = [e for e in first if OCT[0] <= e.occurred_on <= OCT[1]]
    return [
        *scenario.new_records(400, *OCT),
        *scenario.corrections(120, october),
        *scenario.withdrawals(60, october),
        *scenario.new_records(40, *SEP),
    ]


@pytest.fixture
def agreement(topics: HubSettings) -> Agreement:
    return load_agreement(topics.agreement)


def make_publisher(settings: HubSettings, agreement: Agreement) -> Publisher:
    deadline = time.monotonic() + 60
    while True:  # the worker creates its changelog topic as it starts
        try:
            return Publisher(settings, agreement, worker_timeout=240)
        except PublishError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_published_cells_and_revisions_match_ground_truth(
    topics: HubSettings, worker: WorkerProcess, agreement: Agreement, tmp_path: Path
) -> None:
    settings = topics
    scenario = Scenario.create(partner_ids(settings), children=300, seed=5)
    first = scenario.new_records(3000, date(2026, 7, 1), date(2026, 10, 31))
    scenario.corrections(300, first)
    scenario.withdrawals(150, first)
    send(settings, list(scenario.events), scenario.rnd, replay=0.1)
    worker.start()
    publisher = make_publisher(settings, agreement)
    try:
        # A minute before its time, October is not released; what earlier times closed
        # is released as a catch-up: the history back to the first month with records
        # (July to September; Q3 by the board's run of 15 October), never Q2 or June.
        early = changed(publisher.run_due(london(2026, 11, 10, 8, 59)))
        assert early == {
            ("monthly", JUL[0]): 0,
            ("monthly", AUG[0]): 0,
            ("monthly", SEP[0]): 0,
            ("board-quarterly", Q3[0]): 0,
        }
        on_time = changed(publisher.run_due(london(2026, 11, 10, 9, 0)))
        assert on_time == {("monthly", OCT[0]): 0}
        assert publisher.run_due(london(2026, 11, 10, 9, 0)) and not changed(
            publisher.run_due(london(2026, 11, 10, 9, 0))
        )
        published = Published(settings)
        for publication, period in (
            ("monthly", JUL),
            ("monthly", AUG),
            ("monthly", SEP),
            ("monthly", OCT),
            ("board-quarterly", Q3),
        ):
            assert_period(published, publication, period, scenario, agreement, revision=0)
        q3_before = published.period("board-quarterly", Q3)

        # What an analyst sees: the same cells, suppressed ones marked, not zero.
        listed = hub(settings, "subscribe", "--from", "2026-10", "--format", "csv")
        assert listed.returncode == 0, listed.stderr
        rows = list(csv.DictReader(io.StringIO(listed.stdout)))
        october = published.period("monthly", OCT)
        assert len(rows) == len(october)
        for row in rows:
            assert row["period_start"] == "2026-10-01"
            assert (row["count"] == "") == (row["suppressed"] == "True")
            assert row["count"] == "" or not 1 <= int(row["count"]) <= 7
        by_cell = {(r["measure"], r["dimension"], r["value"]): r["count"] for r in rows}
        for snapshot in october.values():
            cell = (snapshot["measure"], snapshot["dimension"], snapshot["value"])
            count = snapshot["count"]
            assert by_cell[cell] == ("" if count is None else str(count))

        # Late and corrected data after the publication.
        send(settings, late_data(scenario, first), scenario.rnd, replay=0.2)
        send(settings, first[:500], scenario.rnd, replay=0.0)  # an agency re-sends old events
        between = changed(publisher.run_due(london(2026, 11, 20, 12, 0)))
        assert between == {}  # revisions wait for a scheduled time

        # An operator forces October's revision now; it is logged and numbered.
        forced = hub(
            settings,
            "publish",
            "--now",
            "--period",
            "2026-10",
            "--wait",
            "240",
            "--reason",
            "test release",
        )
        assert forced.returncode == 0, forced.stderr
        assert "released monthly 2026-10 revision 1" in forced.stdout
        assert "forced release by" in forced.stderr

        december = changed(publisher.run_due(london(2026, 12, 10, 9, 0)))
        assert december == {("monthly", SEP[0]): 1, ("monthly", NOV[0]): 0}
        published = Published(settings)
        assert_period(published, "monthly", SEP, scenario, agreement, revision=1)
        assert_period(published, "monthly", OCT, scenario, agreement, revision=1)
        assert_period(published, "monthly", NOV, scenario, agreement, revision=0, busy=False)
        assert_period(published, "monthly", JUL, scenario, agreement, revision=0)
        assert published.period("board-quarterly", Q3) == q3_before  # not its time yet

        january = changed(publisher.run_due(london(2027, 1, 15, 9, 0)))
        assert january[("board-quarterly", Q3[0])] == 1
        published = Published(settings)
        assert_period(published, "board-quarterly", Q3, scenario, agreement, revision=1)
        assert_safe(published, scenario, agreement.disclosure.suppress_at_or_below)

        # The board pack of the quarter, from what is on the trends topic.
        pack = tmp_path / "pack.html"
        written = hub(settings, "report", "--period", "2026Q3", "--out", str(pack))
        assert written.returncode == 0, written.stderr
        assert "board-quarterly 2026Q3 revision 1" in written.stdout
        html = pack.read_text(encoding="utf-8")
        for measure in ("events", "children"):
            (cell,) = [
                c
                for c in published.period("board-quarterly", Q3).values()
                if (c["measure"], c["dimension"]) == (measure, "total")
            ]
            assert f'<div class="value">{cell["count"]:,}</div>' in html, measure
        unpublished = hub(settings, "report", "--period", "2027Q1", "--out", str(pack))
        assert unpublished.returncode == 1 and "2027Q1" in unpublished.stderr
        assert "<code>release/board-quarterly/2026-07-01/r1</code>" in html

        scheduled = [early, on_time, december, january]
        made = {(p, start, r): False for run in scheduled for (p, start), r in run.items()}
        check_release_entries(settings, made | {("monthly", OCT[0], 1): True})
    finally:
        publisher.close()


def check_release_entries(settings: HubSettings, made: dict[tuple[str, date, int], bool]) -> None:
    """Every release above (publication, period start, revision -> forced) has its entry
    on the audit trail, and the entry counts the cells of that revision as the trends
    topic holds them."""
    entries = read_entries(settings, kinds=("RELEASE",))
    forced = {f"release/{p}/{start}/r{r}": f for (p, start, r), f in made.items()}
    assert sorted(e["id"] for e in entries) == sorted(forced)
    codec = Codec("trend_snapshot")
    revisions: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for _, value in read_trends(settings):
        cell = codec.decode(value)
        key = f"release/{cell['publication']}/{cell['period_start']}/r{cell['revision']}"
        revisions.setdefault(key, []).append(cell)
    for entry in entries:
        release = entry["release"]
        assert release["forced"] == forced[entry["id"]]
        assert entry["reason"] == ("test release" if release["forced"] else None)
        cells = revisions[entry["id"]]
        hidden = sum(1 for c in cells if c["suppressed"])
        assert (release["cells"], release["published"]) == (len(cells), len(cells) - hidden)
        kinds = ("suppressed_primary", "suppressed_secondary", "suppressed_linked")
        assert sum(release[k] for k in kinds) == hidden, entry


def consumed(worker: WorkerProcess) -> float:
    try:
        return worker.metrics().get("hub_events_consumed_total", 0.0)
    except OSError:
        return 0.0


def wait_consumed(workers: list[WorkerProcess], target: float, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(consumed(w) for w in workers) >= target:
            return
        time.sleep(0.02)
    state = [
        {k: v for k, v in w.metrics().items() if "consumed" in k or "lag" in k or "partitions" in k}
        for w in workers
    ]
    raise AssertionError(f"workers consumed fewer than {target} events in {timeout} s: {state}")


def test_two_workers_sigkilled_publish_the_same_cells(
    topics: HubSettings, agreement: Agreement, tmp_path: Path
) -> None:
    settings = topics
    # The development store on this one, the production store (RocksDB, whose files
    # survive the SIGKILL) on the other.
    one = WorkerProcess(settings.model_copy(update={"store": "memory://"}), tmp_path / "one.log")
    two = WorkerProcess(
        settings.model_copy(
            update={
                "metrics_port": free_port(),
                "worker_data": tmp_path / "worker-two",
                "store": "rocksdb://",
            }
        ),
        tmp_path / "two.log",
    )
    scenario = Scenario.create(partner_ids(settings), children=300, seed=5)
    first = scenario.new_records(12000, date(2026, 7, 1), date(2026, 10, 31))
    scenario.corrections(1200, first)
    scenario.withdrawals(600, first)
    sent = send(settings, list(scenario.events), scenario.rnd, replay=0.1)
    try:
        one.start()
        two.start()
        wait_consumed([one, two], sent * 0.3)
        counted = one.metrics().get("hub_events_counted", 0) + two.metrics().get(
            "hub_events_counted", 0
        )
        one.kill()  # the other takes its partitions over
        assert counted < len(scenario.latest)
        one.start()
        two.kill()  # as soon as the first is back, whatever it has done by then
        two.start()

        publisher = make_publisher(settings, agreement)
        try:
            publisher.run_due(london(2026, 11, 10, 8, 59))  # July to September and Q3 catch up
            assert changed(publisher.run_due(london(2026, 11, 10, 9, 0))) == {
                ("monthly", OCT[0]): 0,
            }
            published = Published(settings)
            for publication, period in (
                ("monthly", SEP),
                ("monthly", OCT),
                ("board-quarterly", Q3),
            ):
                assert_period(published, publication, period, scenario, agreement, revision=0)

            late = late_data(scenario, first)
            before = consumed(one) + consumed(two)
            send(settings, late, scenario.rnd, replay=0.2)
            wait_consumed([one, two], before + 50)
            one.kill()  # while the late data is being processed
            one.start()

            december = changed(publisher.run_due(london(2026, 12, 10, 9, 0)))
            assert december == {
                ("monthly", SEP[0]): 1,
                ("monthly", OCT[0]): 1,
                ("monthly", NOV[0]): 0,
            }
            published = Published(settings)
            assert_period(published, "monthly", SEP, scenario, agreement, revision=1)
            assert_period(published, "monthly", OCT, scenario, agreement, revision=1)
            assert_safe(published, scenario, agreement.disclosure.suppress_at_or_below)
        finally:
            publisher.close()
    finally:
        one.stop()
        two.stop()
