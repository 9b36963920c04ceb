"""Bad input costs only its own row: never a traceback, never the rest of the source.

Deeply nested JSON, text that is not Unicode, multi-value cells written as JSON
arrays or with the wrong separator, terms the profile does not know, and a
profile that maps to a partnership's local risk code. No Kafka: nothing here
drains the outbox.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapters.mapping import RowMapper
from adapters.profile import PROFILES_DIR, Profile, load_profile
from adapters.runner import AdapterRun, adapter_run
from adapters.sources.base import SourceRecord
from adapters.sources.http_push import PushEndpoint, parse_items, serve
from adapters.sources.jsonl import JsonLinesSource
from hub import resources
from hub.errors import ConfigError, RecordError
from hub.models import OnlineComponent, PlatformType
from hub.pseudonymise import KeyRing, Pseudonymiser, write_key_file
from hub.settings import HubSettings
from tests.support.agreements import example_areas
from tests.support.http_push import TOKENS, post
from tests.support.processes import free_port, hub

DEEP = 100_000
#: Deeply nested JSON, with and without its closing brackets, at the top and in a value.
NESTED = [
    "[" * DEEP,
    "[" * DEEP + "]" * DEEP,
    '{"a": ' * DEEP,
    '{"session_id": "s-9", "presenting_issues": ' + "[" * DEEP + "]" * DEEP + "}",
]
SESSION = {
    "session_id": "s-1",
    "event": "chat_session",
    "session_date": "2026-09-14",
    "user_id": "u-4471",
    "age": "14",
    "area": "Dudley",
    "presenting_issues": "sexting",
}
PSEUDONYMISER = Pseudonymiser(KeyRing.generate("t"))
UNKNOWN_1_OF_2 = "1 term(s) not in the profile's vocabulary; kept the 1 recognised"
LOCAL = "LOCAL_GAMING_CHAT_CONTACT"
LOCAL_TERMS = "in-game chat contact; grooming"


@pytest.fixture
def settings(tmp_path: Path) -> HubSettings:
    key_file = tmp_path / "partnership.key"
    write_key_file(key_file, KeyRing.generate("t"))
    return HubSettings(
        key_file=key_file, outbox=tmp_path / "outbox.sqlite", bootstrap="127.0.0.1:1"
    )


def session(record_id: str, **changes: Any) -> dict[str, Any]:
    return {**SESSION, "session_id": record_id, **changes}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def mapper(profile: Profile | str, **kwargs: Any) -> RowMapper:
    if isinstance(profile, str):
        profile = load_profile(profile)
    return RowMapper(profile, PSEUDONYMISER, "export", **{"areas": example_areas(), **kwargs})


def with_changes(name: str, **changes: Any) -> Profile:
    """A shipped profile with some of its settings (and vocabularies) replaced."""
    data = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
    values = data.get("values", {}) | changes.pop("values", {})
    return Profile.model_validate(data | changes | {"values": values})


# --- 1. nested too deeply -----------------------------------------------------------


@pytest.mark.parametrize("line", NESTED, ids=["open", "closed", "objects", "in-a-value"])
def test_deeply_nested_json_lines_reject_their_row_only(
    settings: HubSettings, tmp_path: Path, line: str
) -> None:
    path = write_lines(
        tmp_path / "sessions.jsonl",
        [json.dumps(session("s-1")), line, json.dumps(session("s-2"))],
    )
    items = list(JsonLinesSource(path, load_profile("counselling")).records())
    assert [type(i) for i in items] == [SourceRecord, RecordError, SourceRecord]
    error = items[1]
    assert isinstance(error, RecordError)
    assert (error.source, error.row, error.field) == (str(path), 2, "*")
    assert "nested too deeply" in error.reason

    with adapter_run(settings, "counselling", None, quarantine=tmp_path / "q") as run:
        summary = run.ingest_file(path)
    assert (summary.read, summary.accepted) == (3, 2)
    assert [(e.row, e.field) for e in summary.rejected] == [(2, "*")]
    report = (tmp_path / "q" / "sessions.jsonl.rejects.csv").read_text()
    assert "nested too deeply" in report and "[[[" not in report


def test_a_check_of_a_deeply_nested_file_ends_cleanly(
    settings: HubSettings, tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "sessions.jsonl", [json.dumps(session("s-1")), "[" * DEEP])
    result = hub(settings, "adapter", "check", "--profile", "counselling", str(path))

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 rows read" in result.stdout and "1 rejected" in result.stdout
    assert "nested too deeply" in result.stdout


def test_text_that_is_not_unicode_rejects_its_row_only(
    settings: HubSettings, tmp_path: Path
) -> None:
    """JSON can escape a lone surrogate; nothing downstream can encode one."""
    lines = [
        json.dumps(session("s-1")),
        json.dumps(session("s-\ud800")),
        json.dumps({**session("s-3"), "not \udc00 a key": "x"}),
        json.dumps(session("s-4")),
    ]
    path = write_lines(tmp_path / "sessions.jsonl", lines)
    with adapter_run(settings, "counselling", None, quarantine=tmp_path / "q") as run:
        summary = run.ingest_file(path)

    assert summary.accepted == 2
    # The canonical field (record_id), never the key: a key can be anything.
    assert [(e.row, e.field) for e in summary.rejected] == [(2, "record_id"), (3, "*")]
    assert all("not valid Unicode" in e.reason for e in summary.rejected)
    report = (tmp_path / "q" / "sessions.jsonl.rejects.csv").read_text(encoding="utf-8")
    assert [r["row"] for r in csv.DictReader(report.splitlines())] == ["2", "3"]


@pytest.fixture
def counselling_run(settings: HubSettings, tmp_path: Path) -> Iterator[AdapterRun]:
    with adapter_run(settings, "counselling", None, quarantine=tmp_path / "q") as opened:
        yield opened


@pytest.fixture
def push(counselling_run: AdapterRun) -> Iterator[PushEndpoint]:
    with serve(counselling_run, "127.0.0.1", free_port(), TOKENS) as started:
        yield started


@pytest.mark.parametrize("body", NESTED, ids=["open", "closed", "objects", "in-a-value"])
def test_a_deeply_nested_push_is_400_and_the_endpoint_goes_on(
    push: PushEndpoint, body: str
) -> None:
    status, answer, text = post(push, body.encode())

    assert status == 400
    assert answer["error"] == "body is not valid JSON: nested too deeply"
    assert "[[" not in text and "s-9" not in text
    status, answer, _ = post(push, [session("s-1")])
    assert status == 202 and answer["accepted"] == 1


def test_parse_items_names_nesting_without_quoting_the_body() -> None:
    items, problem = parse_items(b'{"a": ' * DEEP)
    assert items is None and problem == "body is not valid JSON: nested too deeply"


# --- 2. multi-value cells ---------------------------------------------------------


@pytest.mark.parametrize(
    "cell",
    [
        "Sexting, Online grooming",
        "Sexting;Online grooming",
        "sexting;  online grooming ; ",
        '["Sexting", "Online grooming"]',
        ' [ "Sexting" , "ONLINE GROOMING" ] ',
        '["Sexting; Online grooming"]',
    ],
)
def test_counselling_terms_by_comma_separator_or_json_array(cell: str) -> None:
    rows = mapper("counselling")
    event = rows.map(2, session("s-1", presenting_issues=cell))
    assert event.online_risks == ("GROOMING", "NUDE_IMAGE_SHARING_U18")
    assert rows.take_notes() == []


def test_a_comma_space_separates_terms_only_in_a_counselling_feed() -> None:
    rows = mapper("generic")
    event = rows.map(
        2,
        {
            "record_id": "R-1",
            "occurred_on": "2026-09-14",
            "online_component": "yes",
            "risk_codes": "grooming, sextortion",
        },
    )
    assert event.online_risks == ()  # one unknown term, "grooming, sextortion"
    assert [n.reason for n in rows.take_notes()] == [
        "1 term(s) not in the profile's vocabulary; kept the 0 recognised"
    ]


SELF_HARM, PRIVACY, NUDES, EATING, USE = (
    "SELF_HARM_CONTENT",
    "PRIVACY_BREACH_DOXXING",
    "NUDE_IMAGE_SHARING_U18",
    "EATING_DISORDER_CONTENT",
    "EXCESSIVE_USE",
)


@pytest.mark.parametrize(
    ("cell", "codes", "unknown"),
    [
        ("Self-harm, suicide", (SELF_HARM,), 0),
        ("Sexting, Self-harm, suicide", (NUDES, SELF_HARM), 0),
        ("Self-harm, suicide; Sexting", (NUDES, SELF_HARM), 0),
        ("Tracking; location, Sexting", (NUDES, PRIVACY), 0),
        ("Self-harm, Sexting", (EATING, NUDES), 0),
        ('["Self-harm, suicide", "Tracking; location"]', (PRIVACY, SELF_HARM), 0),
        ("[Gaming]", (USE,), 0),
        ("[Gaming]; Sexting", (USE, NUDES), 0),
        ("[Gaming; Sexting]; Sexting", (NUDES,), 2),  # not JSON: split as text
        ('["Sexting", 1]; Sexting', (NUDES,), 2),  # not an array of strings: split as text
    ],
)
def test_a_term_holding_a_comma_or_the_separator_is_read_whole(
    cell: str, codes: tuple[str, ...], unknown: int
) -> None:
    profile = with_changes(
        "counselling",
        values={
            "risk": {
                "Self-harm, suicide": [SELF_HARM],
                "Tracking; location": [PRIVACY],
                "Sexting": [NUDES],
                "Self-harm": [EATING],  # not what it means: tells the two terms apart
                "[Gaming]": [USE],
            }
        },
    )
    rows = mapper(profile)
    assert rows.map(2, session("s-1", presenting_issues=cell)).online_risks == codes
    assert [n.reason.split(" ")[0] for n in rows.take_notes()] == (
        [str(unknown)] if unknown else []
    )


def test_a_json_lines_list_reaches_the_mapper_as_a_json_array(tmp_path: Path) -> None:
    profile = load_profile("counselling")
    path = write_lines(
        tmp_path / "sessions.jsonl",
        [
            json.dumps(session("s-1", presenting_issues=["Sexting", "Online grooming"])),
            json.dumps(session("s-2", presenting_issues=["Sexting", ["Online grooming"]])),
            json.dumps(session("s-3", outcome=["advice given"])),
            json.dumps(session("s-4", presenting_issues=[])),
        ],
    )
    first, nested, not_multi, empty = JsonLinesSource(path, profile).records()
    assert isinstance(first, SourceRecord)
    assert first.values["presenting_issues"] == '["Sexting", "Online grooming"]'
    event = mapper(profile).map(first.row, first.values)
    assert event.online_risks == ("GROOMING", "NUDE_IMAGE_SHARING_U18")
    assert isinstance(nested, RecordError) and nested.field == "risk"  # canonical, not the key
    assert isinstance(not_multi, RecordError) and not_multi.field == "outcome"
    assert isinstance(empty, SourceRecord)
    assert mapper(profile).map(empty.row, empty.values).online_risks == ()


def test_a_pushed_list_of_terms_is_accepted(push: PushEndpoint) -> None:
    status, answer, _ = post(
        push, [session("s-1", presenting_issues=["Sexting", "Online grooming", "banana"])]
    )
    assert status == 202 and answer["accepted"] == 1 and answer["rejected"] == []


def test_a_json_array_nested_too_deeply_in_a_csv_cell_is_text() -> None:
    rows = mapper("counselling")
    with pytest.raises(RecordError) as error:
        rows.map(2, session("s-1", presenting_issues="[" * DEEP + "]" * DEEP))
    assert error.value.field == "risk"


# --- 3. unknown terms: noted, not rejected ------------------------------------------


def test_an_unknown_term_is_noted_and_the_row_keeps_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    rows = mapper("counselling")
    event = rows.map(7, session("s-1", presenting_issues="Sexting; Zara Nowak told me"))

    assert event.online_risks == ("NUDE_IMAGE_SHARING_U18",)
    assert event.online_component is OnlineComponent.YES
    (note,) = rows.take_notes()
    assert (note.source, note.row, note.field, note.reason) == ("export", 7, "risk", UNKNOWN_1_OF_2)
    assert "Zara" not in str(note) + repr(note) + caplog.text
    assert rows.take_notes() == [] and rows.notes == []


def test_all_terms_unknown_without_an_online_column_is_rejected() -> None:
    """Counselling has no online_component column: the risk codes are the online assessment,
    and a row whose terms are all unknown would count as "not assessed"."""
    rows = mapper("counselling")
    with pytest.raises(RecordError) as error:
        rows.map(3, session("s-1", presenting_issues="Zara Nowak; told me"))
    assert (error.value.row, error.value.field) == (3, "risk")
    assert error.value.reason == "2 term(s) not in the profile's vocabulary"
    assert "Zara" not in str(error.value)


@pytest.mark.parametrize(
    ("online", "component"),
    [("yes", OnlineComponent.YES), ("no", OnlineComponent.NO), ("", OnlineComponent.NOT_ASSESSED)],
)
def test_all_terms_unknown_with_an_online_column_keeps_the_row(
    online: str, component: OnlineComponent
) -> None:
    """The generic profile has an online_component column: the row's own answer stands."""
    rows = mapper("generic")
    row = {
        "record_id": "R-1",
        "occurred_on": "2026-09-14",
        "online_component": online,
        "risk_codes": "Zara Nowak",
    }
    event = rows.map(4, row)

    assert event.online_risks == () and event.online_component is component
    (note,) = rows.take_notes()
    assert (note.row, note.field) == (4, "risk")
    assert note.reason == "1 term(s) not in the profile's vocabulary; kept the 0 recognised"


def test_an_unknown_platform_is_noted_and_the_row_kept() -> None:
    generic = load_profile("generic")
    profile = with_changes(
        "generic",
        columns={**generic.columns, "platform": ["platform"]},
        values={
            "online_component": {"yes": "YES"},
            "risk": {"grooming": ["GROOMING"]},
            "platform": {"snapchat": ["SOCIAL_NETWORK"], "roblox": ["ONLINE_GAMING"]},
        },
    )
    rows = mapper(profile)
    row = {
        "record_id": "R-1",
        "occurred_on": "2026-09-14",
        "online_component": "yes",
        "risk_codes": "grooming",
    }
    event = rows.map(2, row | {"platform": "Snapchat;MyNewApp"})
    assert event.platform_types == (PlatformType.SOCIAL_NETWORK,)
    event = rows.map(3, row | {"platform": "MyNewApp"})
    assert event.platform_types == ()
    notes = rows.take_notes()
    assert [(n.row, n.field, n.reason) for n in notes] == [
        (2, "platform", UNKNOWN_1_OF_2),
        (3, "platform", "1 term(s) not in the profile's vocabulary; kept the 0 recognised"),
    ]


def test_a_row_with_a_noted_term_is_accepted_by_the_adapter(
    settings: HubSettings, tmp_path: Path
) -> None:
    path = write_lines(
        tmp_path / "sessions.jsonl",
        [json.dumps(session("s-1", presenting_issues="Sexting; see notes"))],
    )
    with adapter_run(settings, "counselling", None, dry_run=True) as run:
        summary = run.ingest_file(path)
    assert (summary.accepted, summary.rejected) == (1, [])


# --- B. the agreement's local risk codes ------------------------------------------------


def local_profile(tmp_path: Path) -> Path:
    """The generic profile, with a term mapped to the example agreement's local code."""
    data = yaml.safe_load((PROFILES_DIR / "generic.yaml").read_text(encoding="utf-8"))
    data["values"]["risk"]["in-game chat contact"] = [LOCAL]
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def agreement_without_local_codes(tmp_path: Path) -> Path:
    example = resources.deploy("agreement", "example.yaml")
    data = yaml.safe_load(Path(example).read_text(encoding="utf-8"))
    assert [c["code"] for c in data.pop("local_risk_codes")] == [LOCAL]
    path = tmp_path / "agreement.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def local_export(tmp_path: Path) -> Path:
    path = tmp_path / "export.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["record_id", "occurred_on", "online_component", "risk_codes"])
        writer.writerow(["R-1", "2026-09-14", "yes", "in-game chat contact"])
        writer.writerow(["R-2", "2026-09-14", "yes", "grooming;in-game chat contact"])
    return path


def test_a_local_code_declared_in_the_agreement_is_accepted(
    settings: HubSettings, tmp_path: Path
) -> None:
    profile = local_profile(tmp_path)
    result = hub(
        settings, "adapter", "check", "--profile", str(profile), str(local_export(tmp_path))
    )

    assert result.returncode == 0, result.stderr
    assert "2 rows read" in result.stdout and " 0 rejected" in result.stdout
    with adapter_run(settings, str(profile), None, dry_run=True) as run:
        rows = run.adapter.mapper("export")
        row = {"record_id": "R-1", "occurred_on": "2026-09-14", "risk_codes": LOCAL_TERMS}
        event = rows.map(2, row)
    assert event.online_risks == ("GROOMING", LOCAL)


def test_a_local_code_the_agreement_lacks_is_refused_clearly(
    settings: HubSettings, tmp_path: Path
) -> None:
    profile = local_profile(tmp_path)
    without = settings.model_copy(update={"agreement": agreement_without_local_codes(tmp_path)})
    result = hub(
        without, "adapter", "check", "--profile", str(profile), str(local_export(tmp_path))
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "risk term 'in-game chat contact'" in result.stderr
    assert LOCAL in result.stderr and "local_risk_codes" in result.stderr
    with pytest.raises(ConfigError, match=LOCAL), adapter_run(without, str(profile), None):
        pass
    assert not without.outbox.exists()  # refused before anything was opened


def test_an_unreadable_agreement_stops_the_adapter_with_its_own_message(
    settings: HubSettings, tmp_path: Path
) -> None:
    missing = settings.model_copy(update={"agreement": tmp_path / "missing.yaml"})
    result = hub(missing, "adapter", "check", "--profile", "generic", str(local_export(tmp_path)))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "missing.yaml" in result.stderr and "cannot read it" in result.stderr
    with pytest.raises(ConfigError, match="cannot read it"), adapter_run(missing, "generic", None):
        pass
    assert not missing.outbox.exists()
