"""The SQL source against a real PostgreSQL: mapping, rejects, resuming, errors.

The agency's side is a children's services case-management table behind a
view, with an ``updated_at`` watermark; the hub's side is the real adapter
and outbox (no Kafka needed: nothing here forwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import make_url

from adapters import pipeline
from adapters.outbox import Outbox
from adapters.pipeline import Adapter
from adapters.profile import load_profile
from adapters.runner import AdapterRun, adapter_run
from adapters.sources.base import SourceRecord
from adapters.sources.sql import SourceError, SqlSource
from hub.codec import Codec
from hub.errors import HubError, RecordError
from hub.minimise import Minimiser
from hub.models import CaseEvent, LinkageBasis
from hub.pseudonymise import KeyRing, Pseudonymiser, write_key_file
from hub.settings import HubSettings
from hub.taxonomy import Taxonomy
from tests.support.case_db import GOOD, Database
from tests.support.processes import free_port

AGENCY = "camhs"
QUERY = "SELECT * FROM cs_case_events"
WATERMARK = "updated_at"


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("t"))
    return HubSettings(key_file=key_file, outbox=tmp_path / "outbox.sqlite")


@pytest.fixture
def run(settings: HubSettings, tmp_path: Path) -> Iterator[AdapterRun]:
    """A real (not dry) run of the generic profile as camhs, with no Kafka behind it."""
    profile = load_profile("generic")
    outbox = Outbox(settings.outbox)
    adapter = Adapter(
        profile,
        settings.case_topic(AGENCY),
        Pseudonymiser.from_settings(settings),
        outbox,
        tmp_path / "quarantine",
        Minimiser.from_settings(settings),
        agency=AGENCY,
    )
    try:
        yield AdapterRun(settings, profile, adapter, outbox, None)
    finally:
        outbox.close()


def events(run: AdapterRun) -> list[CaseEvent]:
    assert run.outbox is not None
    codec = Codec("case_event")
    return [CaseEvent.from_avro(codec.decode(item.value)) for item in run.outbox.pending()]


def record_key(settings: HubSettings, record_id: str) -> str:
    return Pseudonymiser.from_settings(settings).record_key(AGENCY, record_id)


def source_name(url: str) -> str:
    return SqlSource(url, QUERY, WATERMARK, None).name


def test_dry_run_maps_rows_and_rejects_the_bad_one_by_row_and_field(
    db: Database, settings: HubSettings
) -> None:
    db.insert(
        {"record_id": "CS-1", "updated_at": "2026-09-14 09:00:00+00"},
        {"record_id": "CS-2", "updated_at": "2026-09-14 09:05:00+00"},
        # Born after the event: rejected, and third in watermark order.
        {
            "record_id": "CS-3",
            "date_of_birth": date(2027, 1, 1),
            "updated_at": "2026-09-14 09:10:00+00",
        },
        {"record_id": "CS-4", "updated_at": "2026-09-14 09:15:00+00"},
        # No watermark value: cannot be read incrementally, reported after the others.
        {"record_id": "CS-5", "updated_at": None},
    )
    with adapter_run(settings, "generic", AGENCY, dry_run=True) as dry:
        summary = dry.ingest_query(db.url, QUERY, WATERMARK)
    assert (summary.read, summary.accepted, summary.stored) == (5, 3, 0)
    name = source_name(db.url)
    assert summary.source == name
    assert [(e.source, e.row, e.field) for e in summary.rejected] == [
        (name, 3, "date_of_birth"),
        (name, 5, WATERMARK),
    ]
    assert "after the event date" in summary.rejected[0].reason
    password = make_url(db.url).password
    assert password and password not in name


def test_fields_map_into_pseudonymised_events(
    db: Database, run: AdapterRun, settings: HubSettings
) -> None:
    db.insert(GOOD)
    summary = run.ingest_query(db.url, QUERY, WATERMARK)
    assert (summary.read, summary.accepted, summary.stored, summary.rejected) == (1, 1, 1, [])
    (event,) = events(run)
    assert event.record_key == record_key(settings, "CS-1")
    assert event.subject is not None and event.subject.basis is LinkageBasis.NHS_NUMBER
    assert event.occurred_on == date(2026, 9, 14)
    assert event.age_band == "11-13"  # 13 on 2026-09-14
    assert event.area_code == "DY1 4"
    assert event.sex.value == "FEMALE"
    assert event.online_risks == ("GROOMING", "SEXTORTION")  # a text[] column
    assert event.event_type.value == "REFERRAL" and event.outcome.value == "POLICE_REFERRAL"
    shown = repr(event)  # identifiers are only ever pseudonyms (hex digests) in the event
    assert [
        v for v in ("Nowak", "Zara", "9434765919", "943 476 5919", "DY1 4RT") if v in shown
    ] == []
    assert run.outbox is not None
    assert run.outbox.watermark(summary.source) == "2026-09-14T10:00:00.123456+00:00"


def test_values_become_text_as_an_export_would_hold_them(db: Database) -> None:
    db.insert(GOOD | {"online_component": None})
    source = SqlSource(db.url, QUERY, WATERMARK, None, name="cs")
    (record,) = list(source.records())
    assert isinstance(record, SourceRecord)
    assert (record.source, record.row) == ("cs", 1)
    assert record.values["occurred_on"] == "2026-09-14"
    assert record.values["date_of_birth"] == "2013-05-02"
    assert record.values["record_version"] == "1"
    assert record.values["online_component"] == ""
    assert record.values["risk_codes"] == "grooming;SEXTORTION"
    assert "worker_notes" not in record.values  # the view does not share it
    assert source.watermark_of(record) == "2026-09-14T10:00:00.123456+00:00"


def test_a_second_run_reads_only_rows_added_or_updated_since_the_watermark(
    db: Database, run: AdapterRun, settings: HubSettings
) -> None:
    db.insert(
        {"record_id": "CS-1", "updated_at": "2026-09-14 09:00:00+00"},
        {"record_id": "CS-2", "updated_at": "2026-09-14 09:05:00+00"},
        {"record_id": "CS-3", "updated_at": "2026-09-14 09:10:00+00"},
    )
    first = run.ingest_query(db.url, QUERY, WATERMARK)
    assert (first.read, first.stored) == (3, 3)

    db.insert({"record_id": "CS-4", "updated_at": "2026-09-15 08:00:00+00"})
    db.execute(
        "UPDATE cs_cases SET record_version = 2, outcome = 'early_help',"
        " updated_at = '2026-09-15 08:30:00+00' WHERE record_id = 'CS-1'"
    )
    second = run.ingest_query(db.url, QUERY, WATERMARK)
    # CS-3 again (it holds the stored watermark, >=), then CS-4 and CS-1 version 2.
    assert (second.read, second.accepted, second.stored) == (3, 3, 2)
    assert second.changes == {"unchanged": 1, "new": 1, "corrected": 1}
    updated = [e for e in events(run) if e.record_key == record_key(settings, "CS-1")]
    assert sorted((e.record_version, e.outcome.value) for e in updated) == [
        (1, "POLICE_REFERRAL"),
        (2, "EARLY_HELP"),
    ]

    third = run.ingest_query(db.url, QUERY, WATERMARK)
    assert (third.read, third.stored) == (1, 0)
    assert len(events(run)) == 5


class StopsAfter:
    """Wraps a source and fails part-way, as a crash or a lost connection would."""

    def __init__(self, source: SqlSource, records: int) -> None:
        self.source = source
        self.name = source.name
        self.left = records

    def records(self) -> Iterator[SourceRecord | RecordError]:
        for item in self.source.records():
            if self.left == 0:
                raise HubError("connection lost")
            self.left -= 1
            yield item


def test_rows_sharing_a_watermark_across_a_batch_boundary_are_not_lost(
    db: Database, run: AdapterRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "BATCH", 2)
    same = "2026-09-14 09:05:00+00"
    db.insert(
        {"record_id": "CS-1", "updated_at": "2026-09-14 09:00:00+00"},
        {"record_id": "CS-2", "updated_at": same},
        {"record_id": "CS-3", "updated_at": same},
        {"record_id": "CS-4", "updated_at": same},
        {"record_id": "CS-5", "updated_at": "2026-09-14 09:10:00+00"},
    )
    source = SqlSource(db.url, QUERY, WATERMARK, None)
    # The first batch (CS-1, CS-2) is stored with CS-2's watermark; CS-3 is read but
    # the run dies before its batch is stored.
    with pytest.raises(HubError, match="connection lost"):
        run.adapter.ingest(StopsAfter(source, 3), watermark=source.watermark_of)
    assert run.outbox is not None
    assert run.outbox.watermark(source.name) == "2026-09-14T09:05:00+00:00"
    assert len(events(run)) == 2

    resumed = run.ingest_query(db.url, QUERY, WATERMARK)
    # CS-2 again (deduplicated), and CS-3 and CS-4 that share its watermark, and CS-5.
    assert (resumed.read, resumed.stored) == (4, 3)
    assert len(events(run)) == 5


def test_a_row_added_later_at_the_stored_watermark_is_read(
    db: Database, run: AdapterRun, settings: HubSettings
) -> None:
    db.insert({"record_id": "CS-1", "updated_at": "2026-09-14 09:00:00+00"})
    assert run.ingest_query(db.url, QUERY, WATERMARK).stored == 1
    # E.g. a transaction stamped before the first run committed after it.
    db.insert({"record_id": "CS-2", "updated_at": "2026-09-14 09:00:00+00"})
    second = run.ingest_query(db.url, QUERY, WATERMARK)
    assert (second.read, second.stored) == (2, 1)
    assert {e.record_key for e in events(run)} == {
        record_key(settings, "CS-1"),
        record_key(settings, "CS-2"),
    }


def test_an_integer_watermark_is_compared_as_a_number(db: Database, run: AdapterRun) -> None:
    db.execute("ALTER TABLE cs_cases ADD COLUMN change_seq bigint")
    db.execute("CREATE VIEW cs_changes AS SELECT * FROM cs_cases")
    query = "SELECT record_id, occurred_on, change_seq FROM cs_changes;"
    db.insert({"record_id": "CS-1"}, {"record_id": "CS-2"})
    db.execute("UPDATE cs_cases SET change_seq = 2 WHERE record_id = 'CS-1'")
    db.execute("UPDATE cs_cases SET change_seq = 9 WHERE record_id = 'CS-2'")
    first = run.ingest_query(db.url, query, "change_seq")
    assert (first.read, first.stored) == (2, 2)
    assert run.outbox is not None
    assert run.outbox.watermark(first.source) == "9"

    db.insert({"record_id": "CS-3"}, {"record_id": "CS-4"})
    db.execute("UPDATE cs_cases SET change_seq = 10 WHERE record_id = 'CS-3'")
    db.execute("UPDATE cs_cases SET change_seq = 11 WHERE record_id = 'CS-4'")
    second = run.ingest_query(db.url, query, "change_seq")
    # 9, 10, 11: as text "10" < "9", so a text comparison would read nothing new.
    assert (second.read, second.stored) == (3, 2)
    assert run.outbox.watermark(first.source) == "11"


def check_error(exc: SourceError, name: str, password: str, *words: str) -> None:
    message = str(exc)
    assert isinstance(exc, HubError)
    assert password not in message
    assert message.startswith(name)
    for word in words:
        assert word in message


def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    password = "s3cret-Pa55word"  # noqa: S105 (made up: the error must not show it)
    url = f"postgresql+psycopg://hub:{password}@127.0.0.1:{free_port()}/casework"
    source = SqlSource(url, QUERY, WATERMARK, None)
    with pytest.raises(SourceError) as info:
        list(source.records())
    check_error(info.value, source.name, password, "cannot connect", "host, port")
    assert "127.0.0.1" in source.name and "casework" in source.name


def test_a_wrong_password_is_a_clear_error_without_the_password(db: Database) -> None:
    password = "not-the-Pa55word"  # noqa: S105 (made up: the error must not show it)
    url = make_url(db.url).set(password=password).render_as_string(hide_password=False)
    source = SqlSource(url, QUERY, WATERMARK, None)
    with pytest.raises(SourceError) as info:
        list(source.records())
    check_error(info.value, source.name, password, "cannot connect", "password authentication")


def test_a_malformed_url_is_a_clear_error_without_the_password() -> None:
    with pytest.raises(SourceError, match="URL is not valid") as info:
        SqlSource("hub:Pa55word@db.example/casework", QUERY, WATERMARK, None)
    assert "Pa55word" not in str(info.value)
    with pytest.raises(SourceError, match="cannot connect") as unknown:
        list(SqlSource("nosuchdb://hub:Pa55word@db/x", QUERY, WATERMARK, None).records())
    assert "Pa55word" not in str(unknown.value)


def test_a_failing_query_names_the_source_and_what_to_check(db: Database) -> None:
    password = make_url(db.url).password
    assert password
    missing = SqlSource(db.url, "SELECT * FROM no_such_view", WATERMARK, None)
    with pytest.raises(SourceError) as info:
        list(missing.records())
    check_error(info.value, missing.name, password, "the query failed", "no_such_view")

    db.insert(GOOD)
    wrong = SqlSource(db.url, QUERY, "modified", "2026-01-01")
    with pytest.raises(SourceError) as no_column:
        list(wrong.records())
    check_error(no_column.value, wrong.name, password, "the query failed", "'modified'")

    stale = SqlSource(db.url, QUERY, WATERMARK, "42")
    with pytest.raises(SourceError, match="stored watermark does not fit"):
        list(stale.records())


PLANTED = ("Zelda Quixotefield DOB 03/04/2012 NHS 9434765919", "DY1 4RT", "9434765919")


def test_planted_free_text_in_any_column_never_reaches_an_event_or_a_report(
    db: Database, run: AdapterRun, tmp_path: Path
) -> None:
    """Free text, a full postcode or an NHS number in every column the view shares: no
    event in the outbox (what Kafka would get), no rejection and no quarantine report
    carries it."""
    columns = ("event_type", "sex", "postcode", "online_component", "outcome", "record_id")
    rows: list[dict[str, object]] = []
    for column in columns:
        for cell in PLANTED:
            n = len(rows)
            at = f"2026-09-14 10:{n:02}:00+00"
            rows.append({"record_id": f"CS-{n}", column: cell, "updated_at": at})
    rows.append({"record_id": "CS-risk", "risk_codes": list(PLANTED)})
    db.insert(*rows)
    summary = run.ingest_query(db.url, QUERY, WATERMARK)
    assert summary.read == len(rows) and summary.accepted > 0 and summary.rejected
    sent = b"".join(item.value + item.key for item in run.outbox.pending()) if run.outbox else b""
    shown = "\n".join([summary.line(), *(str(e) for e in summary.rejected + summary.warnings)])
    reports = "".join(p.read_text() for p in (tmp_path / "quarantine").glob("*.csv"))
    for cell in PLANTED:
        assert cell.encode() not in sent, cell
        assert cell not in shown and cell not in reports, cell
    for event in events(run):
        assert event.area_code in ("DY1 4", "unknown")
        assert set(event.online_risks) <= set(Taxonomy().codes)
