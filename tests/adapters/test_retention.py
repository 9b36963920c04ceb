"""Retention at the agency: the outbox forgets what Kafka took long enough ago, except
what a later withdrawal needs; quarantine reports age out; `hub retention report` says
how old what each store holds is, against the agreement.

The clock is the outbox's own timestamps, moved back here by SQL, and the files'
modification times: no test waits for a day to pass.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from adapters.outbox import Outbox
from adapters.runner import DAY, apply_retention, local_ages
from hub.agreement.model import Retention
from hub.models import EventType
from hub.settings import HubSettings
from tests.support.agreements import EXAMPLE_AGREEMENT
from tests.support.processes import hub
from tests.support.versioning import POLICE, Agency, changes, police_row, write

RETENTION = Retention(case_events_days=365, outbox_sent_days=30, quarantine_days=60)


def age(outbox: Path, days: float) -> None:
    """Make everything already sent or ingested `days` older, as if time had passed."""
    with sqlite3.connect(outbox) as db:
        for table, column in (
            ("outbox", "sent_at"),
            ("audit", "sent_at"),
            ("files", "ingested_at"),
        ):
            db.execute(
                f"UPDATE {table} SET {column} = {column} - ? WHERE {column} IS NOT NULL",  # noqa: S608
                (days * DAY,),
            )


def rows_of(outbox: Path, table: str) -> int:
    with sqlite3.connect(outbox) as db:
        (count,) = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()  # noqa: S608
    return int(count)


def send_everything(outbox: Outbox) -> None:
    """What the forwarder does once Kafka acknowledged every item."""
    while items := outbox.pending():
        outbox.mark_sent(item.event_id for item in items)


def test_sent_events_past_retention_go_but_a_live_records_last_event_stays(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    police = Agency("police", path)
    rows = [police_row(f"OC{i}", f"P{i}", "Ann Lee") for i in range(6)]
    police.run(write(tmp_path / "m1.csv", POLICE, rows))
    rows[0] = police_row("OC0", "P0", "Ann Lee", offence="Indecent images of children")
    police.run(write(tmp_path / "m2.csv", POLICE, rows))  # one correction
    send_everything(police.outbox)
    assert rows_of(path, "outbox") == 7

    # Sent 29 days ago: within the 30 the agreement allows; nothing goes.
    age(path, 29)
    pruned, _ = apply_retention(police.outbox, None, RETENTION)
    assert (pruned.events, rows_of(path, "outbox")) == (0, 7)
    # 31 days: the corrected record's first version goes; each live record's last stays.
    age(path, 2)
    pruned, _ = apply_retention(police.outbox, None, RETENTION)
    assert (pruned.events, rows_of(path, "outbox")) == (1, 6)

    # A full export that drops a record still withdraws it, from the event kept.
    summary = police.run(write(tmp_path / "m3.csv", POLICE, rows[1:]))
    assert changes(summary) == (0, 0, 1, 5)
    withdrawal = police.events()[-1]
    assert withdrawal.event_type is EventType.WITHDRAWN
    send_everything(police.outbox)
    # The withdrawn record's older version goes after 30 days; its withdrawal and state
    # stay as long as case events do (365 days), so a record that comes back goes on
    # from a higher version.
    age(path, 31)
    pruned, _ = apply_retention(police.outbox, None, RETENTION)
    assert (pruned.events, pruned.record_states) == (1, 0)
    assert rows_of(path, "records") == 6 and rows_of(path, "outbox") == 6
    back = police.run(write(tmp_path / "m4.csv", POLICE, rows))
    assert sum(back.changes.values()) == 6 and back.changes["unchanged"] == 5
    returned = police.events()[-1]
    assert returned.record_key == withdrawal.record_key
    assert returned.record_version > withdrawal.record_version
    send_everything(police.outbox)
    withdrawn = police.run(write(tmp_path / "m5.csv", POLICE, rows[1:]))
    assert changes(withdrawn) == (0, 0, 1, 5)
    send_everything(police.outbox)
    # 335 days on: the first withdrawal and the version that came back are gone; the
    # second withdrawal, 335 days old, stays with the state; at 366 days both go.
    age(path, 335)
    pruned, _ = apply_retention(police.outbox, None, RETENTION)
    assert (pruned.events, pruned.record_states) == (2, 0)
    age(path, 31)
    pruned, _ = apply_retention(police.outbox, None, RETENTION)
    assert (pruned.events, pruned.record_states) == (1, 1)
    assert rows_of(path, "records") == 5 and rows_of(path, "outbox") == 5
    police.outbox.close()


def test_what_is_not_sent_is_never_deleted(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"
    police = Agency("police", path)
    police.run(write(tmp_path / "m1.csv", POLICE, [police_row("OC1", "P1", "Ann Lee")]))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE outbox SET created_at = created_at - ?", (400 * DAY,))
    pruned, _ = apply_retention(police.outbox, None, RETENTION)
    assert pruned.events == 0 and police.outbox.counts() == (1, 0)
    police.outbox.close()


def test_quarantine_reports_age_out(tmp_path: Path) -> None:
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()
    old, new = quarantine / "jan.csv.rejects.csv", quarantine / "nov.csv.rejects.csv"
    other = quarantine / "notes.txt"  # not a report: never touched
    for path in (old, new, other):
        path.write_text("source,row,field,reason,outcome\n", encoding="utf-8")
    long_ago = time.time() - 61 * DAY
    os.utime(old, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    outbox = Outbox(tmp_path / "outbox.sqlite")
    try:
        _, deleted = apply_retention(outbox, quarantine, RETENTION)
    finally:
        outbox.close()
    assert deleted == 1 and not old.exists() and new.exists() and other.exists()


def test_no_store_may_keep_data_longer_than_its_case_events() -> None:
    with pytest.raises(ValidationError, match="outbox_sent_days .400. is longer"):
        Retention(case_events_days=365, outbox_sent_days=400)
    with pytest.raises(ValidationError, match="quarantine_days .400. is longer"):
        Retention(case_events_days=365, quarantine_days=400)
    short = Retention(case_events_days=7)
    assert (short.outbox_days, short.quarantine_keep_days) == (7, 7)
    assert (RETENTION.outbox_days, RETENTION.quarantine_keep_days) == (30, 60)


def test_the_report_says_which_store_is_over_and_the_run_brings_it_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    police = Agency("police", path)
    rows = [police_row("OC1", "P1", "Ann Lee"), police_row("OC2", "P2", "Bea Lee")]
    police.run(write(tmp_path / "m1.csv", POLICE, rows))
    rows[0] = police_row("OC1", "P1", "Ann Lee", offence="Indecent images of children")
    police.run(write(tmp_path / "m2.csv", POLICE, rows))
    send_everything(police.outbox)
    police.outbox.close()
    age(path, 45)
    quarantine = tmp_path / "quarantine"
    quarantine.mkdir()

    agreement = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    agreement["retention"]["outbox_sent_days"] = 30
    agreement_file = tmp_path / "agreement.yaml"
    agreement_file.write_text(yaml.safe_dump(agreement), encoding="utf-8")
    settings = HubSettings(agreement=agreement_file, outbox=path)
    args = ("retention", "report", "--no-topics", "--quarantine", str(quarantine))
    before = hub(settings, *args)
    assert before.returncode == 1, before.stdout + before.stderr
    lines = {line.split("  ")[0]: line for line in before.stdout.splitlines()}
    assert lines["outbox sent event"].rstrip().endswith("OVER"), before.stdout
    assert "pending event" in before.stdout and "quarantine reports" in before.stdout
    assert "1 store(s) hold data past" in before.stderr

    outbox = Outbox(path)
    try:
        apply_retention(outbox, quarantine, Retention(**agreement["retention"]))
    finally:
        outbox.close()
    after = hub(settings, *args)
    assert after.returncode == 0, after.stdout + after.stderr
    # What is left is each live record's last event: still older than 30 days, and kept
    # on purpose; the report shows the oldest sent event that retention may still take.
    ages = {a.store: a for a in local_ages(path, quarantine, RETENTION)}
    assert ages["outbox sent audit entry"].oldest is None
