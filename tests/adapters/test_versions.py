"""Record identity, versions derived at the agency, withdrawals and the snapshot guard.

Exports here have no version column, as the shipped partner profiles' exports
do not: a changed row must become a new version, a withdrawn or deleted record
a withdrawal, and nothing may be withdrawn by accident.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.versions import EPOCH, clock_version
from hub.models import CaseEvent, EventType, LinkageBasis
from hub.pseudonymise import Pseudonymiser, name_dob_key
from tests.support.versioning import POLICE, RING, Agency, changes, police_row, write


@pytest.fixture
def police(tmp_path: Path) -> Iterator[Agency]:
    agency = Agency("police", tmp_path / "outbox.sqlite")
    yield agency
    agency.outbox.close()


def test_several_children_on_one_occurrence_are_several_records(
    police: Agency, tmp_path: Path
) -> None:
    path = write(tmp_path / "m1.csv", POLICE, [
        police_row("OC1", "P1", "Ann Lee"),
        police_row("OC1", "P2", "Bea Lee"),
        police_row("OC1", "P3", "Cat Lee"),
    ])  # fmt: skip
    summary = police.run(path)
    assert changes(summary) == (3, 0, 0, 0) and not summary.rejected
    events = police.events()
    assert len({e.record_key for e in events}) == len({e.event_id for e in events}) == 3


def test_a_changed_row_is_the_next_version_and_an_unchanged_one_sends_nothing(
    police: Agency, tmp_path: Path
) -> None:
    rows = [police_row("OC1", "P1", "Ann Lee"), police_row("OC2", "P2", "Bea Lee")]
    police.run(write(tmp_path / "m1.csv", POLICE, rows))
    rows[1] = police_row("OC2", "P2", "Bea Lee", offence="Indecent images of children")
    summary = police.run(write(tmp_path / "m2.csv", POLICE, rows))
    assert changes(summary) == (0, 1, 0, 1) and summary.stored == 1
    first, second, correction = police.events()
    assert correction.record_key == second.record_key and correction.online_risks == ("CSAM",)
    assert correction.record_version > second.record_version
    assert correction.event_id not in (first.event_id, second.event_id)


def test_a_record_a_full_export_no_longer_lists_is_withdrawn(
    police: Agency, tmp_path: Path
) -> None:
    rows = [police_row(f"OC{i}", f"P{i}", "Ann Lee") for i in range(10)]
    police.run(write(tmp_path / "m1.csv", POLICE, rows))
    summary = police.run(write(tmp_path / "m2.csv", POLICE, rows[1:]))
    assert changes(summary) == (0, 0, 1, 9) and summary.refused is None
    withdrawal = police.events()[-1]
    assert withdrawal.event_type is EventType.WITHDRAWN
    assert withdrawal.record_key == police.events()[0].record_key
    assert withdrawal.subject == police.events()[0].subject, "same partition as its record"
    again = police.run(write(tmp_path / "m3.csv", POLICE, rows[1:]))
    assert changes(again) == (0, 0, 0, 9), "a withdrawal is sent once"


def test_too_many_withdrawals_an_empty_or_a_truncated_export_are_held_back(
    police: Agency, tmp_path: Path
) -> None:
    rows = [police_row(f"OC{i}", f"P{i}", "Ann Lee") for i in range(10)]
    police.run(write(tmp_path / "m1.csv", POLICE, rows))
    half = police.run(write(tmp_path / "half.csv", POLICE, rows[:5]))
    assert half.refused is not None and "5 of the 10 live records (50%)" in half.refused
    assert "--accept-withdrawals" in half.refused and changes(half) == (0, 0, 0, 5)
    empty = police.run(write(tmp_path / "empty.csv", POLICE, []))
    assert empty.refused is not None and "lists no record" in empty.refused
    text = (tmp_path / "m1.csv").read_text()
    truncated = tmp_path / "truncated.csv"
    truncated.write_text(text[: text.rindex("OC8") + 12])  # cut inside row OC8
    cut = police.run(truncated)
    assert cut.refused is not None and "truncated" in cut.refused
    assert not [e for e in police.events() if e.event_type is EventType.WITHDRAWN]
    confirmed = police.run(tmp_path / "half.csv", accept=True)
    assert confirmed.refused is None and changes(confirmed) == (0, 0, 5, 5)


def test_rows_the_profile_cannot_tell_apart_are_refused_naming_both(
    police: Agency, tmp_path: Path
) -> None:
    rows = [
        police_row("OC1", "P1", "Ann Lee"),
        police_row("OC1", "P1", "Ann Lee"),  # the same line twice: one record
        police_row("OC1", "P1", "Ann Lee", offence="Indecent images of children"),
    ]
    summary = police.run(write(tmp_path / "m1.csv", POLICE, rows))
    assert changes(summary) == (1, 0, 0, 1)
    [error] = summary.rejected
    assert (error.row, error.field) == (4, "record_id") and "as row 2" in error.reason


def test_a_withdrawn_row_withdraws_the_other_records_of_its_id(tmp_path: Path) -> None:
    camhs = Agency("camhs", tmp_path / "outbox.sqlite")
    header = ["Referral ID", "Activity Type", "Activity Date", "NHS Number", "Online Risks"]
    nhs = "9434765919"
    camhs.run(write(tmp_path / "jan.csv", header, [
        ["R1", "Referral", "05/01/2026", nhs, "Sexting"],
        ["R1", "Choice Appointment", "19/01/2026", nhs, "Sexting"],
        ["R2", "Referral", "06/01/2026", nhs, "Online grooming"],
    ]))  # fmt: skip
    summary = camhs.run(write(tmp_path / "feb.csv", header, [
        ["R1", "Referral Withdrawn", "02/02/2026", nhs, "Sexting"],
    ]))  # fmt: skip
    assert changes(summary) == (0, 0, 1, 0), "a withdrawn row counts once"
    withdrawn = [e for e in camhs.events() if e.event_type is EventType.WITHDRAWN]
    live_keys = {e.record_key for e in camhs.events()[:3]}
    assert len(withdrawn) == 3 and len({e.record_key for e in withdrawn} & live_keys) == 2
    camhs.outbox.close()


def test_a_rebuilt_outbox_never_makes_a_later_correction_stale(tmp_path: Path) -> None:
    rows = [police_row("OC1", "P1", "Ann Lee")]
    before = Agency("police", tmp_path / "old.sqlite")
    before.run(write(tmp_path / "m1.csv", POLICE, rows))
    before.run(write(tmp_path / "m2.csv", POLICE, [police_row("OC1", "P1", "Ann Lee", "Stalking")]))
    sent = before.events()
    after = Agency("police", tmp_path / "new.sqlite")  # the outbox is lost
    after.now = before.now + 5
    after.run(write(tmp_path / "m3.csv", POLICE, rows))
    [resent] = after.events()
    assert resent.record_key == sent[0].record_key
    assert resent.record_version > max(e.record_version for e in sent)


def test_versions_follow_the_clock_and_fit_avro_int() -> None:
    assert clock_version(EPOCH + 90) == 90
    assert clock_version(EPOCH + 68 * 365.25 * 86400) < 2**31


def test_every_identifier_a_row_carries_is_a_match_key(tmp_path: Path) -> None:
    """CAMHS has NHS number and name + DOB: the police (name + DOB) can meet it."""
    camhs = Agency("camhs", tmp_path / "camhs.sqlite")
    header = ["Referral ID", "Activity Type", "Activity Date", "NHS Number", "Surname",
              "Forename", "DOB"]  # fmt: skip
    camhs.run(write(tmp_path / "c.csv", header, [
        ["R1", "Referral", "05/01/2026", "943 476 5919", "Lee", "Ann", "04/05/2012"],
    ]))  # fmt: skip
    [event] = camhs.events()
    assert event.subject is not None and event.subject.basis is LinkageBasis.NHS_NUMBER
    [other] = event.other_subjects
    police = Agency("police", tmp_path / "police.sqlite")
    police.run(write(tmp_path / "p.csv", POLICE, [police_row("OC1", "P1", "Ann Lee")]))
    [incident] = police.events()
    assert incident.subject is not None and incident.subject.basis is LinkageBasis.NAME_DOB
    assert incident.subject.value == other.value
    assert other.basis is LinkageBasis.NAME_DOB
    local = [p for p in incident.other_subjects if p.basis is LinkageBasis.LOCAL_ID]
    assert len(local) == 1, "the police person id links the force's own records"
    camhs.outbox.close()
    police.outbox.close()


def test_a_profile_without_an_online_column_says_not_recorded(tmp_path: Path) -> None:
    youth = Agency("youth-service", tmp_path / "outbox.sqlite")
    header = ["Ref", "Type of Contact", "Date", "Online issue"]
    youth.run(write(tmp_path / "y.csv", header, [
        ["Y1", "Drop in", "05/01/2026", ""],
        ["Y2", "Drop in", "05/01/2026", "Sexting"],
    ]))  # fmt: skip
    quiet, online = youth.events()
    assert (quiet.online_component.value, quiet.online_recorded) == ("NOT_ASSESSED", False)
    assert online.online_component.value == "YES"
    youth.outbox.close()


OFFENCES = ("Harassment", "Indecent images of children", "Sexual communication with a child")
NAMES = ("Ann Lee", "Bea Cho", "Cat Dunn", "Dot Eve", "Eli Fox", "Fay Gil")
snapshots = st.lists(
    st.dictionaries(st.integers(0, len(NAMES) - 1), st.sampled_from(OFFENCES), min_size=1),
    min_size=1,
    max_size=5,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots, st.data())
def test_the_highest_versions_sent_say_what_the_last_full_export_says(
    exports: list[dict[int, str]], data: st.DataObject
) -> None:
    """Whatever the sequence of full exports, and with the outbox lost after any of them
    (then the last export ingested run again, as docs/adapters.md says), the versions the
    hub receives resolve to exactly the last export: its records live with its content,
    every other record withdrawn."""
    lost_after = data.draw(st.none() | st.integers(0, len(exports) - 1))
    sent: list[CaseEvent] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        agency = Agency("police", folder / "outbox-1.sqlite", limit=1.0)
        for number, export in enumerate(exports):
            rows = [police_row(f"OC{i}", f"P{i}", NAMES[i], o) for i, o in sorted(export.items())]
            path = write(folder / f"m{number}.csv", POLICE, rows)
            agency.run(path, accept=True)
            if number == lost_after:
                sent += agency.events()
                agency.outbox.close()
                clock = agency.now
                agency = Agency("police", folder / "outbox-2.sqlite", limit=1.0)
                agency.now = clock
                agency.run(path, accept=True)  # the recovery step: the last export again
        sent += agency.events()
        agency.outbox.close()
    by_id: dict[str, CaseEvent] = {}
    for event in sent:
        assert by_id.setdefault(event.event_id, event) == event, "one event id, one content"
    latest: dict[str, CaseEvent] = {}
    for event in sent:
        held = latest.get(event.record_key)
        if held is None or event.record_version > held.record_version:
            latest[event.record_key] = event
    live = {
        e.subject.value: e.online_risks
        for e in latest.values()
        if e.event_type is not EventType.WITHDRAWN and e.subject is not None
    }
    pseudonymiser = Pseudonymiser(RING)
    expected = {}
    for i, offence in exports[-1].items():
        given_name, family = NAMES[i].split()
        key = name_dob_key(family, given_name, date(2012, 5, 4))
        assert key is not None
        subject = pseudonymiser.subject(key, LinkageBasis.NAME_DOB)
        expected[subject.value] = CODES[offence]
    assert live == expected


CODES = {
    "Harassment": ("ONLINE_HARASSMENT",),
    "Indecent images of children": ("CSAM",),
    "Sexual communication with a child": ("GROOMING",),
}
