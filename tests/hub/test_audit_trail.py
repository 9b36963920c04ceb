"""The audit trail on the real broker, through the `hub` commands an operator and an
agency run: agreement changes, a key rotation that waits in the agency's outbox, a
submission, forced releases (a reason that may identify refused), and `hub audit`.

Then the trail is attacked from outside: every byte on the audit topic is searched for
the identifiers planted in the export, for every pseudonym, record key and event id on
the case topic, and for the keys themselves; the only 64-hex-digit strings it may hold
are the SHA-256 digests of the agreement files, computed here.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.profile import load_profile
from adapters.synth.cases import child_pool
from adapters.synth.exports import write_export
from hub.codec import Codec
from hub.pseudonymise import KeyRing, write_key_file
from hub.settings import HubSettings
from tests.support.agreements import agreement_of
from tests.support.messages import read_all
from tests.support.processes import WorkerProcess, hub

PERIOD = "2026-03"
REASON = "the board meeting was brought forward"
HEX64 = re.compile(rb"[0-9a-f]{64}")


def ok(settings: HubSettings, *args: str) -> str:
    result = hub(settings, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"`hub {' '.join(args)}`:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    return result.stdout


def trail(settings: HubSettings, *args: str) -> list[dict[str, Any]]:
    listed = ok(settings, "audit", "--format", "jsonl", *args)
    return [json.loads(line) for line in listed.splitlines() if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def worker(hub_settings: HubSettings, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(hub_settings, tmp_path / "worker.log")
    try:
        yield process
    finally:
        process.stop()


def test_the_trail_records_what_was_done_and_carries_no_identifier(
    hub_settings: HubSettings, tmp_path: Path, worker: WorkerProcess
) -> None:
    settings = hub_settings
    agreement_file = settings.agreement
    digests = {sha256(agreement_file)}

    # The operator brings the cluster to the agreement: recorded once, then on change.
    assert "recorded on the audit trail" in ok(settings, "topics", "apply")
    assert "recorded" not in ok(settings, "topics", "apply")
    (first,) = trail(settings)
    assert first["kind"] == "AGREEMENT_CHANGE"
    assert first["agreement"]["sha256"] == sha256(agreement_file)
    assert first["agreement"]["changes"] == ["first agreement recorded"]
    data = yaml.safe_load(agreement_file.read_text(encoding="utf-8"))
    data["retention"]["case_events_days"] = 1825
    agreement_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    digests.add(sha256(agreement_file))
    applied = ok(settings, "topics", "apply")
    assert "retention.case_events_days: 2555 -> 1825" in applied, applied
    changes = trail(settings, "--kind", "AGREEMENT_CHANGE")
    assert [e["agreement"]["previous_sha256"] for e in changes] == [
        None,
        first["agreement"]["sha256"],
    ]
    assert changes[1]["agreement"]["changes"] == ["retention.case_events_days: 2555 -> 1825"]

    # The agency rotates its key where Kafka may be out of reach: the rotation waits in
    # its outbox and reaches the trail with the adapter's next send.
    rotated = tmp_path / "rotated.key"
    said = ok(
        settings, "keys", "rotate", "--key-file", str(settings.key_file), "--out",
        str(rotated), "--key-id", "k-second", "--agency", "camhs",
    )  # fmt: skip
    assert "outbox" in said
    assert trail(settings, "--kind", "KEY_ROTATION") == []
    agency = settings.model_copy(update={"key_file": rotated})
    profile = load_profile("camhs")
    pool = child_pool(40, seed=5)
    export = tmp_path / "camhs.csv"
    expected_rows = write_export(profile, 200, 11, pool, export)
    quarantine = tmp_path / "quarantine"
    ran = ok(
        agency, "adapter", "run", "--profile", "camhs", "--quarantine", str(quarantine),
        str(export),
    )  # fmt: skip
    (rotation,) = trail(settings, "--kind", "KEY_ROTATION")
    assert rotation["key_rotation"] == {
        "agency": "camhs",
        "key_id": "k-second",
        "previous_key_id": "test",
        "kept_key_ids": ["test"],
        "dropped_key_ids": [],
    }
    (submission,) = trail(settings, "--kind", "SUBMISSION")
    detail = submission["submission"]
    summary = re.search(
        r": (\d+) rows read; (\d+) new, (\d+) corrected, (\d+) withdrawn, (\d+) unchanged,"
        r" (\d+) rejected",
        ran,
    )
    assert summary is not None, ran
    read, new, corrected, withdrawn, unchanged, rejected = map(int, summary.groups())
    assert (detail["agency"], detail["profile"], detail["source_kind"]) == ("camhs", "camhs", "csv")
    assert (detail["read"], detail["new"], detail["changed"]) == (read, new, corrected)
    assert (detail["withdrawn"], detail["unchanged"]) == (withdrawn, unchanged)
    assert sum(detail["rejected"].values()) == rejected > 0
    # Rejections by field, counted here from the quarantine report.
    with next(quarantine.glob("*.csv")).open(encoding="utf-8") as report:
        fields = [row["field"] for row in csv.DictReader(report) if row["outcome"] == "rejected"]
    assert sum(detail["rejected"].values()) == len(fields)
    named = {"record" if field == "*" else field for field in fields}
    assert set(detail["rejected"]) <= named | {"other"}, detail["rejected"]

    # Forced releases: one refused for a reason that may identify, one made.
    worker.start()
    refused = hub(
        settings, "publish", "--now", "--period", PERIOD, "--reason", "child born 12/03/2015"
    )
    assert refused.returncode == 1 and "looks like a date" in refused.stderr, refused.stderr
    released = ok(
        settings, "publish", "--now", "--period", PERIOD, "--wait", "120", "--reason", REASON
    )
    assert f"audit entry release/monthly/{PERIOD}-01/r0" in released, released
    (release,) = trail(settings, "--kind", "RELEASE")
    assert release["id"] == f"release/monthly/{PERIOD}-01/r0"
    assert (release["reason"], release["release"]["forced"]) == (REASON, True)
    cells = [
        row
        for row in csv.DictReader(io.StringIO(ok(settings, "subscribe", "--format", "csv")))
        if row["period_start"].startswith(PERIOD)
    ]
    hidden = sum(1 for row in cells if row["suppressed"] == "True")
    entry = release["release"]
    assert entry["cells"] == len(cells) > 0
    assert entry["published"] == len(cells) - hidden
    assert entry["suppressed_primary"] + entry["suppressed_secondary"] == hidden > 0
    assert entry["suppressed_linked"] == 0  # the first release: nothing beside it yet

    # `hub audit` as CSV, from a day, one kind.
    listed = ok(settings, "audit", "--from", "2020-01-01", "--kind", "RELEASE")
    rows = list(csv.DictReader(io.StringIO(listed)))
    assert [row["id"] for row in rows] == [release["id"]]
    assert rows[0]["summary"].startswith(f"forced release of monthly {PERIOD}-01")
    assert trail(settings, "--from", "2999-01-01") == []

    # The attacker: every byte on the audit topic.
    audit_topic = settings.topic("partnership.audit.v1")
    blob = b"\n".join(
        (m.key or b"") + b"\0" + (m.value or b"") for m in read_all(settings, audit_topic)
    )
    assert len(trail(settings)) == 5 and len(blob) > 1000
    planted = set()
    for row in expected_rows:
        child = row.child
        born = child.born
        planted |= {
            child.nhs_number,
            child.family_name,
            child.given_name,
            born.isoformat(),
            born.strftime("%d/%m/%Y"),
            child.postcode,
            child.postcode.replace(" ", ""),
        }
    leaked = sorted(value for value in planted if value.encode() in blob)
    assert leaked == [], f"identifiers on the audit topic: {leaked[:5]}"

    codec = Codec("case_event")
    events = [
        codec.decode(m.value)
        for topic in agreement_of(settings).case_topics
        for m in read_all(settings, settings.topic(topic))
    ]
    assert len(events) >= new > 0
    secret: set[str] = set()
    for event in events:
        secret |= {event["event_id"], event["record_key"]}
        for pseudonym in [
            event["subject"],
            *event["previous_subjects"],
            *event["other_subjects"],
            event["case"],
        ]:
            if pseudonym is not None:
                secret.add(pseudonym["value"])
    assert not [value for value in secret if value.encode() in blob]
    for key_file in (settings.key_file, rotated):
        body = json.loads(key_file.read_text(encoding="utf-8"))
        for key in body["keys"]:
            assert key["key"].encode() not in blob
            assert base64.b64decode(key["key"]) not in blob
    hex_strings = {match.decode() for match in HEX64.findall(blob)}
    assert hex_strings <= digests, hex_strings - digests


def test_a_key_rotation_is_refused_before_anything_is_written_when_its_file_exists(
    hub_settings: HubSettings, tmp_path: Path
) -> None:
    taken = tmp_path / "taken.key"
    write_key_file(taken, KeyRing.generate("other"))
    refused = hub(
        hub_settings, "keys", "rotate", "--key-file", str(hub_settings.key_file), "--out",
        str(taken),
    )  # fmt: skip
    assert refused.returncode == 1 and "never overwritten" in refused.stderr
    assert not hub_settings.outbox.exists()
