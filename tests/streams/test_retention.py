"""Retention of record versions (``streams.retention``): which day a version goes, the
worker's state once they go, and what a version carries for it."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from hub.agreement.model import load_agreement
from hub.settings import HubSettings
from streams.app import Worker
from streams.checks import implausible
from streams.metrics import WorkerMetrics
from streams.records import RecordVersion, classify
from streams.retention import cutoff, expired, final_from
from streams.state import PartitionState, WorkerState
from streams.store import Disk
from tests.support.agreements import write_agreement
from tests.support.versions import version

SHARED = ["2026-09-01", "2026-10-01", "2026-11-01"]


def test_a_version_is_kept_the_agreement_days_and_goes_on_the_next() -> None:
    shared = date(2026, 3, 1)
    held = version("r1")._replace(shared_on=shared.isoformat())
    for days in (1, 30, 2555):
        last_day = shared + timedelta(days=days - 1)  # `days` days: the first is the day shared
        assert not expired(held, cutoff(last_day, days))
        assert expired(held, cutoff(last_day + timedelta(days=1), days))


def test_a_released_period_is_final_before_any_record_of_it_can_go() -> None:
    # A record of the period occurred in it, and was shared two days before that at most.
    start, days = date(2026, 5, 1), 40
    earliest_share = start - timedelta(days=2)
    first_gone = earliest_share + timedelta(days=days)
    assert final_from(start, days) <= first_gone


def test_a_version_shared_before_its_date_beyond_clock_skew_is_implausible() -> None:
    reported = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    record = {"occurred_on": date(2026, 5, 3), "reported_at": reported, "record_version": 1}
    now = datetime(2026, 5, 10, tzinfo=UTC)
    assert implausible(record, now) is None  # two days: clocks and time zones
    assert implausible({**record, "occurred_on": date(2026, 5, 4)}, now) == "occurred_on"


def test_the_day_shared_is_the_reports_utc_day_and_older_batches_use_the_occurrence() -> None:
    held = version("r1")._replace(shared_on="2026-10-05")
    assert RecordVersion.from_json(held.to_json()) == held
    before = RecordVersion.from_json(held.to_json()[:19])  # written before shared_on
    assert before.shared_on == "" and before.retained_from == held.occurred_on


def test_the_same_content_shared_again_later_is_a_replay() -> None:
    held = version("r1")._replace(shared_on="2026-10-05")
    again = held._replace(shared_on="2026-10-09")
    assert classify(again, held) == "replay" and classify(held, again) == "duplicate"
    state = PartitionState()
    state.apply(held)
    assert state.apply(again) == "replay" and state.live == 1
    assert state.records.get("r1") == again  # kept from the later day


events = st.lists(
    st.tuples(
        st.sampled_from(["r1", "r2", "r3", "r4", "r5"]),
        st.integers(1, 3),
        st.booleans(),
        st.sampled_from(["camhs", "police"]),
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(SHARED),
    ),
    max_size=30,
)


def _versions(stream: list[tuple[str, int, bool, str, str, str]]) -> list[RecordVersion]:
    """One content per (record, version), as agencies send it (the first drawn); the days
    it is shared may differ. A record keeps its child."""
    content: dict[tuple[str, int], tuple[bool, str]] = {}
    subject: dict[str, str] = {}
    out = []
    for k, v, live, a, s, day in stream:
        live, a = content.setdefault((k, v), (live, a))
        codes = (("GROOMING",), ("SEXTORTION",))[v % 2]
        s = subject.setdefault(k, s)
        out.append(
            version(k, v, live=live, agency=a, subject=s, codes=codes)._replace(shared_on=day)
        )
    return out


def _counts(records: dict[str, RecordVersion]) -> tuple[int, Counter[str], int]:
    """Live records, per risk code, and children known to two agencies: counted here."""
    live = [r for r in records.values() if r.live]
    codes = Counter(code for r in live for code in r.codes)
    agencies: dict[str, set[str]] = {}
    for r in live:
        if r.subject is not None:
            agencies.setdefault(r.subject, set()).add(r.agency)
    return len(live), codes, sum(1 for held in agencies.values() if len(held) >= 2)


def _held(versions: list[RecordVersion]) -> dict[str, RecordVersion]:
    """Each record's highest version (ties: the later day shared)."""
    held: dict[str, RecordVersion] = {}
    for v in versions:
        h = held.get(v.record_key)
        if h is None or (v.version, v.shared_on) > (h.version, h.shared_on):
            held[v.record_key] = v
    return held


def _state_counts(state: PartitionState) -> tuple[int, Counter[str], int]:
    return state.live, +state.by_code, state.multi_agency


@settings(max_examples=200, deadline=None)
@given(events, st.sampled_from(SHARED))
def test_the_state_after_removing_what_passed_retention(
    stream: list[tuple[str, int, bool, str, str, str]], since: str
) -> None:
    versions = _versions(stream)
    state = PartitionState()
    for v in versions:
        state.apply(v)
    gone = state.expire(since)
    held = _held(versions)
    remaining = {k: r for k, r in held.items() if r.shared_on >= since}
    assert gone == len(held) - len(remaining)
    assert {r.record_key: r for r in state.records.values()} == remaining
    assert _state_counts(state) == _counts(remaining)
    # Recovered from a changelog that still holds them: they are left out.
    recovered = PartitionState()
    left = recovered.merge(versions, since)
    assert left == sum(1 for v in versions if v.shared_on < since)
    assert _state_counts(recovered) == _counts(_held([v for v in versions if v.shared_on >= since]))


def test_records_go_from_the_disk_store(tmp_path: Path) -> None:
    disk = Disk(tmp_path / "records")
    try:
        state = PartitionState(disk.partition(0))
        state.apply(version("r1")._replace(shared_on="2026-09-01"))
        state.apply(version("r2", subject="s2")._replace(shared_on="2026-11-01"))
        assert state.expire("2026-10-01") == 1
        assert state.records.get("r1") is None and state.records.get("r2") is not None
        assert [r.record_key for r in state.records.values()] == ["r2"] and state.live == 1
    finally:
        disk.close()


def test_the_worker_sweeps_each_new_day_and_what_recovery_found(tmp_path: Path) -> None:
    """The worker's sweep (``streams.app.Worker.sweep``), its snapshots recorded instead of
    written to Kafka: a partition that held records past retention loses them and gets a
    snapshot; one that held none is left alone; once a day, unless recovery found some."""
    path = write_agreement(tmp_path / "agreement.yaml", ("police", "camhs"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["retention"].update(case_events_days=40, quarantine_days=40)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    settings = HubSettings(topic_namespace="ns.", agreement=path)
    state = WorkerState()
    registry = CollectorRegistry()
    worker = Worker(settings, load_agreement(path), WorkerMetrics(registry, state), state)
    snapshots: list[int] = []

    async def snapshot(partition: int) -> None:
        snapshots.append(partition)

    worker.snapshot = snapshot  # type: ignore[method-assign]
    worker.recovering = False
    today = datetime.now(UTC).date()
    old, recent = (today - timedelta(days=d) for d in (40, 39))  # gone today, kept today
    state.partition(0).apply(version("a")._replace(shared_on=old.isoformat()))
    state.partition(0).apply(version("b", subject="s2")._replace(shared_on=recent.isoformat()))
    state.partition(1).apply(version("c", subject="s3")._replace(shared_on=recent.isoformat()))

    asyncio.run(worker.sweep())
    assert snapshots == [0] and state.totals()[2] == 2
    assert state.partitions[0].records.get("a") is None
    assert registry.get_sample_value("hub_versions_expired_total") == 1
    asyncio.run(worker.sweep())  # the same day: nothing to do
    assert snapshots == [0]
    worker.to_sweep.add(1)  # recovery merged versions past retention into nothing
    asyncio.run(worker.sweep())
    assert snapshots == [0, 1] and not worker.to_sweep
