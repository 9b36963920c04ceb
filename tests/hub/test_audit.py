"""The audit trail's pieces without a broker: entries encode and print, a forced release's
reason carries no identifier, an agreement change is described, and the disclosure
rule's reasons for withholding a cell reach the release's counts."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml

from hub import audit
from hub.agreement.model import load_agreement
from hub.disclosure import DisclosureRule, Suppression
from hub.errors import ConfigError
from hub.settings import HubSettings
from streams.aggregate import protect_cells
from tests.support.agreements import EXAMPLE_AGREEMENT

SETTINGS = HubSettings(topic_namespace="ns.")
AT = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


def release_detail() -> dict[str, object]:
    return {
        "publication": "monthly",
        "topic": "ns.partnership.trends.v1",
        "period_start": date(2026, 10, 1),
        "period_end": date(2026, 10, 31),
        "revision": 1,
        "forced": True,
        "cells": 40,
        "published": 31,
        "suppressed_primary": 5,
        "suppressed_secondary": 3,
        "suppressed_linked": 1,
        "withheld": ["events by sex"],
        "status": "PUBLISHED",
        "staged_by": None,
        "staged_id": None,
    }


def every_kind() -> list[dict[str, object]]:
    details: dict[audit.Kind, dict[str, object]] = {
        "RELEASE": release_detail(),
        "ACL_APPLY": {
            "created": ["User:camhs-adapter WRITE topic ns.cases.camhs"],
            "removed": [],
            "agreement_sha256": "ab" * 32,
        },
        "KEY_ROTATION": {
            "agency": "camhs",
            "key_id": "k-2",
            "previous_key_id": "k-1",
            "kept_key_ids": ["k-1"],
            "dropped_key_ids": ["k-0"],
        },
        "AGREEMENT_CHANGE": {
            "sha256": "cd" * 32,
            "previous_sha256": None,
            "changes": ["first agreement recorded"],
            "document": "{}",
        },
        "SUBMISSION": {
            "agency": "camhs",
            "profile": "camhs",
            "source_kind": "csv",
            "read": 12,
            "new": 7,
            "changed": 2,
            "withdrawn": 1,
            "unchanged": 1,
            "rejected": {"nhs_number": 1},
            "resent": False,
            "withdrawals_held": False,
        },
    }
    return [
        audit.entry(kind, "demo", SETTINGS, detail, at=AT, user="operator")
        for kind, detail in details.items()
    ]


def test_every_kind_of_entry_goes_through_the_schema_and_back() -> None:
    for record in every_kind():
        key, value = audit.encode(record)
        decoded = audit.codec().decode(value)
        assert key == str(record["kind"]).encode()
        assert decoded == record
        # Exactly the detail of its own kind is set.
        assert [name for name in audit.DETAIL.values() if decoded[name] is not None] == [
            audit.DETAIL[record["kind"]]  # type: ignore[index]
        ]
        assert decoded["principal"] == "ANONYMOUS" and decoded["account"] == "operator"


def test_hub_audit_offers_every_kind() -> None:
    from hub.cli.stream import audit as audit_command

    (kind,) = [p for p in audit_command.params if p.name == "kinds"]
    assert tuple(kind.type.choices) == audit.KINDS  # type: ignore[attr-defined]


def test_a_release_entry_is_named_after_its_release() -> None:
    record = audit.entry(
        "RELEASE",
        "demo",
        SETTINGS,
        release_detail(),
        id=audit.release_id("monthly", date(2026, 10, 1), 1),
    )
    assert record["id"] == "release/monthly/2026-10-01/r1"


def test_a_two_person_release_says_what_became_of_it() -> None:
    staged = {"staged_by": "User:hub-publisher", "staged_id": "staged/monthly/2026-10-01/r1"}
    lines = {}
    for status in ("STAGED", "REJECTED", "PUBLISHED"):
        detail = release_detail() | staged | {"status": status, "forced": False}
        record = audit.entry("RELEASE", "p", SETTINGS, detail, principal="User:ig-lead")
        decoded = audit.codec().decode(audit.encode(record)[1])
        assert decoded["release"]["status"] == status
        lines[status] = audit.summary(decoded)
    assert lines["STAGED"].startswith(
        "scheduled release staged for approval (staged/monthly/2026-10-01/r1) of monthly"
    )
    assert lines["REJECTED"].startswith(
        "rejected scheduled release (staged/monthly/2026-10-01/r1, staged by"
        " User:hub-publisher) of monthly"
    )
    assert lines["PUBLISHED"].startswith(
        "scheduled release approved (staged by User:hub-publisher) of monthly"
    )


def test_csv_and_jsonl_show_every_entry_with_what_it_records() -> None:
    records = every_kind()
    rows = list(csv.DictReader(io.StringIO(audit.to_csv(records))))
    assert [row["kind"] for row in rows] == list(audit.KINDS)
    assert list(rows[0]) == list(audit.COLUMNS)
    assert rows[0]["summary"] == (
        "forced release of monthly 2026-10-01..2026-10-31 revision 1: 40 cells, 31 published,"
        " 5 primary, 3 secondary and 1 linked suppressions"
    )
    assert json.loads(rows[0]["detail"])["withheld"] == ["events by sex"]
    assert rows[2]["summary"] == "key rotated at camhs: k-1 -> k-2 (1 kept, 1 dropped)"
    assert rows[4]["summary"] == (
        "camhs submitted 12 rows (csv, camhs): 7 new, 2 corrected, 1 withdrawn, 1 unchanged,"
        " 1 rejected"
    )
    lines = [json.loads(line) for line in audit.to_jsonl(records).splitlines()]
    assert [line["kind"] for line in lines] == list(audit.KINDS)
    assert lines[0]["release"]["period_start"] == "2026-10-01"
    assert lines[0]["at"] == "2026-11-10T09:00:00+00:00"
    assert "submission" not in lines[0] and lines[4]["submission"]["new"] == 7


@pytest.mark.parametrize(
    "reason",
    [
        "the board meeting was brought forward",
        "Ofsted inspection next week; the report is needed for it",
        "re-release after the police export for 2026-10 was corrected",
    ],
)
def test_a_reason_without_identifiers_is_kept(reason: str) -> None:
    assert audit.checked_reason(f"  {reason}\n") == reason


@pytest.mark.parametrize(
    ("reason", "what"),
    [
        ("", "needs --reason"),
        ("   ", "needs --reason"),
        ("x" * 301, "301 characters"),
        ("child born 12/03/2015 disclosed", "a date"),
        ("case of 2015-03-12", "a date"),
        ("NHS 943 476 5919 asked", "a long number"),
        ("record 9434765919", "a long number"),
        ("family at B15 2TT moved", "a postcode"),
        ("asked by jo.bloggs@example.org", "an e-mail address"),
    ],
)
def test_a_reason_that_may_identify_is_refused(reason: str, what: str) -> None:
    with pytest.raises(ConfigError, match=what):
        audit.checked_reason(reason)


def example_document(**changes: object) -> dict[str, object]:
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    data.update(changes)
    return data


def test_agreement_changes_are_named_by_section_entry_and_setting(tmp_path: Path) -> None:
    before = load_agreement(EXAMPLE_AGREEMENT).model_dump(mode="json")
    data = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    data["retention"]["case_events_days"] = 1825
    data["partners"] = [p for p in data["partners"] if p["id"] != "voluntary"]
    police = next(p for p in data["partners"] if p["id"] == "police")
    police["shares"] = [f for f in police["shares"] if f != "sex"]
    data["readers"].append({"principal": "User:board", "topics": ["partnership.trends.v1"]})
    changed = tmp_path / "agreement.yaml"
    changed.write_text(yaml.safe_dump(data), encoding="utf-8")
    after = load_agreement(changed).model_dump(mode="json")

    assert sorted(audit.agreement_changes(before, after)) == sorted(
        [
            "partners: voluntary removed",
            "partners[police].shares: -sex",
            "readers: User:board added",
            "retention.case_events_days: 2555 -> 1825",
        ]
    )
    assert audit.agreement_changes(before, before) == []


def test_an_agreement_is_recorded_once_then_only_when_its_file_changes() -> None:
    document = load_agreement(EXAMPLE_AGREEMENT).model_dump(mode="json")
    first = audit.agreement_entry(SETTINGS, "demo", document, "a" * 64, None)
    assert first is not None
    assert first["agreement"]["changes"] == ["first agreement recorded"]
    assert first["agreement"]["previous_sha256"] is None
    assert audit.agreement_entry(SETTINGS, "demo", document, "a" * 64, first) is None
    edited = dict(document, timezone="Europe/Dublin")
    second = audit.agreement_entry(SETTINGS, "demo", edited, "b" * 64, first)
    assert second is not None
    assert second["agreement"]["previous_sha256"] == "a" * 64
    assert second["agreement"]["changes"] == ["timezone: Europe/London -> Europe/Dublin"]
    # A comment or a reordering changes the file, not what it says.
    same = audit.agreement_entry(SETTINGS, "demo", document, "c" * 64, first)
    assert same is not None
    assert same["agreement"]["changes"] == ["the file changed; its meaning did not"]


def test_withheld_cells_carry_why_and_a_small_count_is_always_primary() -> None:
    """Counted here from the true counts: every cell whose count is 1..threshold is a
    primary suppression; every other withheld cell is secondary."""
    rule = DisclosureRule()
    breakdowns = {
        ("events", "total"): {"all": 60},
        ("events", "sex"): {"F": 3, "M": 40, "U": 17},
        ("events", "age_band"): {"0-10": 2, "11-13": 5, "14-15": 23, "16-17": 30},
        ("events", "area"): {"a": 20, "b": 20, "c": 20},
    }
    cells = protect_cells(breakdowns, rule)
    true = {(m, d, v): n for (m, d), counts in breakdowns.items() for v, n in counts.items()}
    kinds = Counter(c.suppression for c in cells if c.suppressed)
    # The partnership's standard rule: a count of 1 to 7 is never published.
    small = sum(1 for n in true.values() if 1 <= n <= 7)
    for cell in cells:
        count = true[cell.measure, cell.dimension, cell.value]
        if 1 <= count <= 7:
            assert cell.suppressed and cell.suppression == Suppression.PRIMARY, cell
        elif cell.suppressed:
            assert cell.suppression == Suppression.SECONDARY, cell
        else:
            assert cell.suppression == Suppression.NONE, cell
    assert kinds[Suppression.PRIMARY] == small == 3
    assert kinds[Suppression.SECONDARY] >= 1  # one small cell alone in sex: another hides it
