"""The whole path secured, through the public CLI: a broker whose only client listener is
SASL_SSL, the agreement's ACLs, and every step as its own principal with only the CA file.

The operator (the broker's super user) applies the topics, stores each principal's
password and applies the ACLs the agreement implies. Then each partner's adapter sends
its own export (written by `hub synth` in the agency's own format), two stream workers
count, the publisher releases every month the exports cover and the analysts read the
cells back. Nothing on the way is refused: the broker's authorizer logs no denial but
the one the test provokes (the analysts asking for a case topic), the workers commit
everything they count and their lag probes report.

The same exports, under the same partnership key, then go through the same steps on a
plain broker: both runs must publish exactly the same cells.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from hub.agreement.model import Agreement
from hub.ops.broker import Broker
from hub.settings import HubSettings
from tests.support.agreements import agreement_of
from tests.support.processes import free_port, hub
from tests.support.secured_path import PathRun, Roles, counted, run_path

OPERATOR_PASSWORD = secrets.token_urlsafe(18)
#: The partners of the `hub_settings` agreement, each with the rows of its export.
EXPORT_ROWS = {"camhs": 250, "police": 250, "spa": 250}
#: `hub synth` dates events in the 300 days from 1 January 2026: January to October,
#: all closed months.
MONTHS = tuple(f"2026-{month:02d}" for month in range(1, 11))
#: At least this many published cells carry a count (not suppressed, not zero).
COUNTED_AT_LEAST = 100


@pytest.fixture
def secured(hub_settings: HubSettings, tmp_path: Path) -> Iterator[Broker]:
    """A broker of the test's own, SASL_SSL only (its CA made as it starts), started."""
    settings = hub_settings.model_copy(
        update={
            "broker_data": tmp_path / "secured-broker",
            "broker_port": free_port(),
            "controller_port": free_port(),
            "broker_security": "sasl_ssl",
            "broker_operator_password": SecretStr(OPERATOR_PASSWORD),
        }
    )
    broker = Broker(settings)
    try:
        broker.start(quiet=True)
        yield broker
    finally:
        broker.stop()


def write_exports(settings: HubSettings, folder: Path) -> dict[str, Path]:
    """Each partner's export in its own format, by `hub synth`."""
    folder.mkdir()
    exports = {}
    for seed, (agency, rows) in enumerate(EXPORT_ROWS.items(), start=11):
        path = folder / f"{agency}-export.txt"
        made = hub(
            settings, "synth", "--agency", agency, "--rows", str(rows), "--seed", str(seed),
            "--out", str(path),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        exports[agency] = path
    return exports


def lag_reported(samples: list[dict[str, float]], topics: list[str]) -> bool:
    """Whether every worker reports its group's lag on every case topic and the deferred
    topic's backlog (the lag probe's offsets and group descriptions are allowed)."""
    return all(
        f'hub_consumer_group_lag{{topic="{topic}"}}' in sample
        and sample.get("hub_events_deferred_waiting") == 0
        for sample in samples
        for topic in topics
    )


def test_the_secured_path_publishes_the_same_cells_as_the_plain_one(
    hub_settings: HubSettings, secured: Broker, tmp_path: Path
) -> None:
    agreement = agreement_of(hub_settings)
    assert [partner.id for partner in agreement.partners] == list(EXPORT_ROWS)
    exports = write_exports(hub_settings, tmp_path / "exports")

    roles = Roles.secured(
        secured.settings, agreement, OPERATOR_PASSWORD, secured.tls_dir / "ca.pem"
    )
    assert set(roles.passwords) == {
        "camhs-adapter",
        "police-adapter",
        "spa-adapter",
        "hub-workers",
        "hub-publisher",
        "analysts",
    }
    secure = run_path(roles, exports, MONTHS, tmp_path / "secured")
    # The analysts are refused a case topic: the only denials in the broker's log, so no
    # step of the path was refused anything on the way.
    refused = hub(roles.reader, "subscribe", roles.reader.case_topic("camhs"))
    assert refused.returncode == 1 and "may not read" in refused.stderr, refused.stderr
    # Nor may they read the audit trail.
    refused = hub(roles.reader, "audit")
    assert refused.returncode == 1 and "may not read" in refused.stderr, refused.stderr
    secured.stop()  # its CPU to the plain run
    denied = [
        line
        for line in (secured.logs / "server.log").read_text(errors="replace").splitlines()
        if " is Denied " in line
    ]
    case_topic = f"Topic:LITERAL:{roles.reader.case_topic('camhs')} "
    audit_topic = f"Topic:LITERAL:{roles.reader.topic('partnership.audit.v1')} "
    assert denied, "the broker logs no denial: its authorizer log is off"
    assert all(
        "Principal = User:analysts " in d and (case_topic in d or audit_topic in d) for d in denied
    ), denied
    for log in secure.worker_logs:  # no authorization error, nothing that crashed
        text = log.read_text(errors="replace")
        assert "uthoriz" not in text and "Traceback" not in text, f"{log.name}:\n{text[-4000:]}"

    # The same exports and key on the session's plain broker, in a namespace of its own.
    plain = run_path(Roles.plain(hub_settings, agreement), exports, MONTHS, tmp_path / "plain")

    assert all(any("rows read" in line for line in said) for said in secure.summaries.values())
    assert secure.summaries == plain.summaries
    assert secure.releases == plain.releases
    for month, released in zip(MONTHS, secure.releases, strict=True):
        assert released.startswith(f"released monthly {month} revision 0:"), released
    for run, settings in ((secure, roles.workers), (plain, hub_settings)):
        assert lag_reported(run.worker_metrics, [settings.case_topic(a) for a in EXPORT_ROWS])
    assert counted(secure.worker_metrics) == counted(plain.worker_metrics) > 0

    cells = secure.cell_set()
    assert len(cells) == len(secure.cells) and len(plain.cell_set()) == len(plain.cells)
    assert cells == plain.cell_set(), (
        f"only secured: {sorted(cells - plain.cell_set())[:10]};"
        f" only plain: {sorted(plain.cell_set() - cells)[:10]}"
    )
    assert {cell["period_start"][:7] for cell in secure.cells} == set(MONTHS)
    with_count = [cell for cell in secure.cells if cell["count"]]
    assert len(with_count) >= COUNTED_AT_LEAST, len(with_count)
    check_audit(secure, plain, agreement)


def kinds(run: PathRun) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in run.audit:
        found.setdefault(entry["kind"], []).append(entry)
    return found


def check_audit(secure: PathRun, plain: PathRun, agreement: Agreement) -> None:
    """Each step left its entry, written as its own principal under the ACLs, and the
    secured and plain runs recorded the same submissions and releases."""
    ours, theirs = kinds(secure), kinds(plain)
    (applied,) = ours["ACL_APPLY"]
    assert applied["principal"] == "User:hub-operator" and applied["acls"]["created"]
    assert "ACL_APPLY" not in theirs  # no ACLs on the plain broker
    assert [len(ours["AGREEMENT_CHANGE"]), len(theirs["AGREEMENT_CHANGE"])] == [1, 1]

    partners = {p.id: p.principal for p in agreement.partners}
    submitted = {e["submission"]["agency"]: e for e in ours["SUBMISSION"]}
    assert len(submitted) == len(ours["SUBMISSION"]) == len(EXPORT_ROWS)
    for agency, entry in submitted.items():
        assert entry["principal"] == partners[agency], entry
        detail = entry["submission"]
        said = f"{detail['read']} rows read; {detail['new']} new, {detail['changed']} corrected,"
        assert any(line.startswith(said) for line in secure.summaries[agency]), (
            said,
            secure.summaries[agency],
        )
    assert {e["submission"]["agency"]: e["submission"] for e in theirs["SUBMISSION"]} == {
        agency: e["submission"] for agency, e in submitted.items()
    }

    releases = {e["release"]["period_start"][:7]: e for e in ours["RELEASE"]}
    assert list(releases) == list(MONTHS)
    for month, entry in releases.items():
        assert entry["principal"] == agreement.services.publisher.principal
        assert entry["reason"] == "test release" and entry["release"]["forced"]
        shown = [c for c in secure.cells if c["period_start"].startswith(month)]
        hidden = sum(1 for c in shown if c["suppressed"])
        detail = entry["release"]
        assert detail["cells"] == len(shown) and detail["published"] == len(shown) - hidden
        suppressed = detail["suppressed_primary"] + detail["suppressed_secondary"]
        assert suppressed + detail["suppressed_linked"] == hidden
    assert [e["release"] for e in theirs["RELEASE"]] == [e["release"] for e in ours["RELEASE"]]
