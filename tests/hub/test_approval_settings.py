"""Two-person release in the agreement: which publications need it, who approves, the
topic and ACLs it implies, and the staged record as approvers read it."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml

from hub.agreement.describe import describe, markdown
from hub.agreement.model import Agreement, load_agreement
from hub.disclosure import Suppression
from hub.ops.acls import Grant, derived_acls, managed
from hub.ops.topics import declared_topics
from hub.settings import HubSettings
from streams.aggregate import Cell
from streams.publish.staging import Staged, same_cells
from tests.support.agreements import EXAMPLE_AGREEMENT, agreement_problems

SETTINGS = HubSettings(topic_namespace="ns.")
STAGED = "ns.partnership.releases.staged.v1"


def example_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_AGREEMENT.read_text(encoding="utf-8"))
    return data


def two_person(tmp_path: Path, approvers: list[str]) -> dict[str, Any]:
    data = copy.deepcopy(example_data())
    data["publication"][0]["approval"] = "two-person"
    data["approval"] = {"approvers": approvers}
    return data


def load(tmp_path: Path, data: dict[str, Any]) -> Agreement:
    path = tmp_path / "agreement.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_agreement(path)


def test_releases_are_automatic_unless_the_agreement_says_two_person(tmp_path: Path) -> None:
    plain = load(tmp_path, example_data())
    assert {s.approval for s in plain.publication} == {"automatic"}
    assert STAGED not in [t.name for t in declared_topics(SETTINGS, plain)]
    agreement = load(tmp_path, two_person(tmp_path, ["User:ig-lead"]))
    assert [s.approval for s in agreement.publication][:1] == ["two-person"]
    assert agreement.approval.approvers == ("User:ig-lead",)
    specs = {t.name: t for t in declared_topics(SETTINGS, agreement)}
    assert specs[STAGED].partitions == 1
    assert specs[STAGED].config["cleanup.policy"] == "compact"  # as the trends: trends_days


def test_a_two_person_publication_needs_approvers_of_their_own(tmp_path: Path) -> None:
    found = agreement_problems(tmp_path, two_person(tmp_path, []))
    assert "needs approvers" in found["publication[0].approval"]
    found = agreement_problems(tmp_path, two_person(tmp_path, ["User:hub-publisher"]))
    assert "is already used at services.publisher.principal" in found["approval.approvers[0]"]
    found = agreement_problems(tmp_path, two_person(tmp_path, ["ig-lead"]))
    assert "is not a principal such as User:ig-lead" in " ".join(found.values())
    data = two_person(tmp_path, ["User:ig-lead"])
    data["publication"][0]["approval"] = "three-person"
    assert "publication[0].approval" in agreement_problems(tmp_path, data)


def test_approvers_read_and_write_the_staged_releases_and_publish_in_transactions(
    tmp_path: Path,
) -> None:
    agreement = load(tmp_path, two_person(tmp_path, ["User:approver"]))
    grants = derived_acls(agreement, SETTINGS)
    approver = {(g.resource, g.name, g.operation) for g in grants if g.principal == "User:approver"}
    assert approver == {
        *(("TOPIC", STAGED, op) for op in ("READ", "WRITE", "DESCRIBE")),
        *(("TOPIC", "ns.partnership.trends.v1", op) for op in ("READ", "WRITE", "DESCRIBE")),
        *(("TOPIC", "ns.partnership.audit.v1", op) for op in ("WRITE", "DESCRIBE")),
        *(("TRANSACTIONAL_ID", "ns.online-risk-hub-release-approval", op)
          for op in ("WRITE", "DESCRIBE")),
    }  # fmt: skip
    publisher = [g for g in grants if g.principal == "User:hub-publisher" and g.name == STAGED]
    assert {g.operation for g in publisher} == {"READ", "WRITE", "DESCRIBE"}
    # Without a two-person publication nobody touches the topic.
    plain = derived_acls(load(tmp_path, example_data()), SETTINGS)
    assert not [g for g in plain if g.name == STAGED]
    assert managed(
        agreement,
        SETTINGS,
        Grant(principal="User:x", name=STAGED, operation="READ").acl().resource_pattern,
    )


def test_a_staged_record_reads_back_as_written() -> None:
    cells = (
        Cell("events", "total", "all", 25, False),
        Cell("events", "sex", "MALE", None, True, Suppression.PRIMARY),
        Cell("events", "sex", "FEMALE", None, True, Suppression.SECONDARY),
    )
    staged = Staged(
        "monthly",
        (date(2026, 10, 1), date(2026, 10, 31)),
        0,
        cells,
        True,
        "board meeting brought forward",
        "User:hub-operator",
        "ops",
        datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
        withheld=(("events", "area"),),
    )
    again = Staged.from_json(staged.to_json())
    assert again == staged and again.id == "staged/monthly/2026-10-01/r0"
    assert [c.suppression for c in again.cells] == [c.suppression for c in cells]
    decided = again.decided("REJECTED", "User:ig-lead", datetime.now(UTC), "wrong", "a1")
    assert Staged.from_json(decided.to_json()) == decided
    assert same_cells(cells, reversed(cells))
    assert not same_cells(cells, (*cells[:2], Cell("events", "sex", "FEMALE", 5, False)))


def test_the_agreement_document_says_who_checks_releases(tmp_path: Path) -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    plain = markdown(describe(load(tmp_path, example_data()), EXAMPLE_AGREEMENT, now))
    assert "Releases are published as soon as they are computed." in plain
    checked = load(tmp_path, two_person(tmp_path, ["User:ig-lead", "User:approver"]))
    text = markdown(describe(checked, tmp_path / "agreement.yaml", now))
    assert (
        "Releases of monthly are staged, seen by no reader, until one of `User:ig-lead`,"
        " `User:approver` (never who staged it) approves them"
    ) in " ".join(text.split())
