"""No identifier and no free text leaves the adapter.

Every partner's messy export through the real adapter to the real broker, then
every byte on every topic searched for the identifiers planted in the inputs.
Then free text (a name, an NHS number, a date of birth, a postcode) planted in
every mapped field of every shipped profile, through the CSV, JSON-lines and
HTTP sources: it reaches no topic, no HTTP answer, no log line, no quarantine
report and no printed rejection; and every field of every event sent comes from
a closed vocabulary (`CLOSED`, which fails when the event gains a field).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from kafka import KafkaConsumer

from adapters.mapping import RowMapper
from adapters.profile import Profile, load_profile, shipped_profiles
from adapters.runner import adapter_run
from adapters.sources.http_push import serve
from adapters.synth.cases import Child, child_pool
from adapters.synth.exports import write_export
from hub.areas import Areas
from hub.codec import Codec
from hub.errors import RecordError
from hub.minimise import UNKNOWN, Minimiser
from hub.models import CaseEvent, EventType, OnlineComponent, Outcome, Pseudonym, Role, Sex
from hub.ops.topics import apply_topics, declared_topics
from hub.pseudonymise import KeyRing, Pseudonymiser
from hub.settings import HubSettings
from tests.support.agreements import agreement_of, example_areas, write_agreement
from tests.support.http_push import TOKEN, TOKENS, post
from tests.support.processes import free_port
from tests.support.publishing import publish_file


def planted(child: Child) -> set[str]:
    born = child.born
    return {
        child.nhs_number,
        f"{child.nhs_number[:3]} {child.nhs_number[3:6]} {child.nhs_number[6:]}",
        child.family_name,
        child.given_name,
        born.isoformat(),
        born.strftime("%d/%m/%Y"),
        born.strftime("%d-%b-%y"),
        child.postcode,
        child.postcode.replace(" ", ""),
    }


def all_bytes(settings: HubSettings) -> bytes:
    topics = [spec.name for spec in declared_topics(settings, agreement_of(settings))]
    consumer = KafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=8000,
    )
    try:
        return b"\n".join(
            (m.key or b"") + b"\0" + (m.value or b"") + b"".join(v for _, v in m.headers or [])
            for m in consumer
        )
    finally:
        consumer.close()


def test_no_planted_identifier_on_any_topic(hub_settings: HubSettings, tmp_path: Path) -> None:
    profiles = [load_profile(name) for name in shipped_profiles()]
    partners = sorted({p.agency for p in profiles})
    agreement = write_agreement(tmp_path / "profiles-agreement.yaml", partners)
    settings = hub_settings.model_copy(update={"agreement": agreement})
    apply_topics(settings, declared_topics(settings, agreement_of(settings)))
    pool = child_pool(60, seed=9)
    children: dict[str, Child] = {}
    sent = 0
    for seed, profile in enumerate(profiles, start=1):
        path = tmp_path / f"{profile.agency}.export"
        for expected in write_export(profile, 150, seed, pool, path):
            children[expected.child.nhs_number] = expected.child
        sent += publish_file(settings, path, profile.agency, profile.agency).stored
    blob = all_bytes(settings)
    assert sent > 0 and len(blob) > sent * 100  # the events really are there
    leaked = sorted(
        value
        for child in children.values()
        for value in planted(child)
        if value.encode("utf-8") in blob or value.encode("cp1252", "ignore") in blob
    )
    assert leaked == [], f"identifiers reached Kafka: {leaked[:5]}"


# --- every field of an event from a closed vocabulary --------------------------------------

#: Every case-event field and the closed vocabulary its value comes from. Nothing in an
#: event is text copied from a row: a field added to the event fails
#: `test_every_event_field_has_a_closed_vocabulary` until it is listed here, with a check.
CLOSED: dict[str, str] = {
    "event_id": "keyed digest (HMAC) of the record's identity and version",
    "schema_version": "the schema's version",
    "agency_id": "the adapter's configuration",
    "agency_type": "the profile",
    "event_type": "the profile's event_type map, its default, or a withdrawal",
    "record_key": "keyed digest (HMAC) of the record's identity",
    "record_version": "a whole number from the export, or the clock",
    "subject": "a keyed pseudonym",
    "previous_subjects": "keyed pseudonyms",
    "other_subjects": "keyed pseudonyms",
    "case": "a keyed pseudonym",
    "occurred_on": "a date",
    "reported_at": "the clock",
    "age_band": "the minimiser's age bands",
    "sex": "the profile's sex map",
    "area_code": "the agreement's areas, or the minimiser's area of a postcode",
    "vulnerabilities": "the profile's vulnerability columns",
    "threshold_level": "the profile's threshold_level map",
    "online_component": "the profile's online_component map, or read from the risk codes",
    "online_recorded": "the profile",
    "online_risks": "the taxonomy codes the profile's risk map names",
    "platform_types": "the profile's platform map",
    "role": "the profile's role map",
    "outcome": "the profile's outcome map",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SECTOR = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9]$")


def closed_checks(
    profile: Profile, agency: str, areas: Areas, key_ids: set[str], minimiser: Minimiser
) -> dict[str, Callable[[Any], bool]]:
    """Per event field: whether a value is one of its closed vocabulary's."""
    values = profile.values

    def pseudonym(p: Pseudonym | None) -> bool:
        return p is None or (_HEX64.match(p.value) is not None and p.key_id in key_ids)

    def among(allowed: set[Any]) -> Callable[[Any], bool]:
        return lambda value: value in allowed

    def subset(allowed: set[Any]) -> Callable[[Any], bool]:
        return lambda value: set(value) <= allowed

    bands = {f"{low}-{high}" for low, high in minimiser.bands} | {UNKNOWN}
    looked_up = set(minimiser.areas.values())
    return {
        "event_id": lambda v: _HEX64.match(v) is not None,
        "schema_version": lambda v: v == CaseEvent.model_fields["schema_version"].default,
        "agency_id": lambda v: v == agency,
        "agency_type": lambda v: v is profile.agency_type,
        "event_type": among(
            {*values.event_type.values(), profile.default_event_type, EventType.WITHDRAWN}
        ),
        "record_key": lambda v: _HEX64.match(v) is not None,
        "record_version": lambda v: isinstance(v, int) and v >= 1,
        "subject": pseudonym,
        "previous_subjects": lambda v: all(pseudonym(p) for p in v),
        "other_subjects": lambda v: all(pseudonym(p) for p in v),
        "case": pseudonym,
        "occurred_on": lambda v: type(v) is date,
        "reported_at": lambda v: isinstance(v, datetime),
        "age_band": among(bands),
        "sex": among({*values.sex.values(), Sex.UNKNOWN}),
        "area_code": lambda v: (
            v in areas.codes or v == UNKNOWN or v in looked_up or _SECTOR.match(v) is not None
        ),
        "vulnerabilities": subset(set(profile.vulnerability_columns)),
        "threshold_level": among({*values.threshold_level.values(), None}),
        "online_component": among(
            {*values.online_component.values(), OnlineComponent.YES, OnlineComponent.NOT_ASSESSED}
        ),
        "online_recorded": lambda v: isinstance(v, bool),
        "online_risks": subset({code for codes in values.risk.values() for code in codes}),
        "platform_types": subset({p for types in values.platform.values() for p in types}),
        "role": among({*values.role.values(), Role.UNKNOWN}),
        "outcome": among({*values.outcome.values(), Outcome.UNKNOWN}),
    }


def open_fields(event: CaseEvent, profile: Profile, areas: Areas, key_ids: set[str]) -> list[str]:
    """The fields of `event` whose value is outside their closed vocabulary."""
    checks = closed_checks(profile, event.agency_id, areas, key_ids, Minimiser())
    return [name for name, ok in checks.items() if not ok(getattr(event, name))]


def test_every_event_field_has_a_closed_vocabulary() -> None:
    """A new event field needs a closed vocabulary here before any test passes."""
    checks = closed_checks(load_profile("generic"), "generic", Areas(), {"t"}, Minimiser())
    assert set(CaseEvent.model_fields) == set(CLOSED) == set(checks)


#: Free text as an attacker or a careless export writes it, and the identifiers in it.
PLANTED_TEXT = "Zelda Quixotefield DOB 03/04/2012 NHS 943 476 5919 DY1 4RT"
PLANTED_CELLS = (PLANTED_TEXT, "DY1 4RT", "9434765919", "Zelda Quixotefield")
NEEDLES = (
    "Zelda",
    "Quixotefield",
    "9434765919",
    "943 476 5919",
    "DY1 4RT",
    "DY14RT",
    "03/04/2012",
)


def leaked(text: str | bytes) -> list[str]:
    folded = (text.decode("utf-8", "replace") if isinstance(text, bytes) else text).casefold()
    return [n for n in NEEDLES if n.casefold() in folded]


def mapped_headers(profile: Profile) -> dict[str, str]:
    """Every field the profile maps (canonical fields and vulnerability flags) -> one of
    its headers."""
    headers: dict[str, str] = {f: hs[0] for f, hs in profile.columns.items() if hs}
    headers |= {str(v): hs[0] for v, hs in profile.vulnerability_columns.items() if hs}
    return headers


def planted_rows(profile: Profile) -> Iterator[tuple[str, dict[str, str]]]:
    """For every mapped field and every planted cell, a row with that cell in that field
    (and a record id and a date of its own, so the rest of the row is good)."""
    headers = mapped_headers(profile)
    day = date(2026, 9, 14).strftime(profile.date_formats[0])
    number = 0
    for field, header in headers.items():
        for cell in PLANTED_CELLS:
            number += 1
            row = {
                headers["record_id"]: f"R-{profile.agency}-{number}",
                headers["occurred_on"]: day,
            }
            yield field, row | {header: cell}


@pytest.mark.parametrize("name", shipped_profiles())
@examples(max_examples=60, deadline=None)
@given(data=st.data())
def test_free_text_in_any_field_never_reaches_an_event(name: str, data: st.DataObject) -> None:
    """Random text and planted identifiers in every mapped field of a profile: an accepted
    event holds only closed-vocabulary values, and never the planted text."""
    profile = load_profile(name)
    areas = example_areas()
    mapper = RowMapper(profile, Pseudonymiser(KeyRing.generate("t")), "x", areas=areas)
    headers = list(mapped_headers(profile).values())
    terms = [term for table in profile.values.model_dump().values() for term in table]
    terms += [a.name for a in areas]
    cell = st.sampled_from([*PLANTED_CELLS, *terms, "2026-09-14", "14"]) | st.text(max_size=12)
    row = data.draw(st.dictionaries(st.sampled_from(headers), cell))
    row = {headers[0]: "R-1", **row}
    try:
        event = mapper.map(2, row)
    except RecordError as error:
        assert leaked(str(error)) == []
        return
    finally:
        for note in mapper.take_notes():
            assert leaked(str(note)) == []
    assert open_fields(event, profile, areas, {"t"}) == []
    assert leaked(event.model_dump_json()) == []


def consume_events(settings: HubSettings) -> list[CaseEvent]:
    codec = Codec("case_event")
    consumer = KafkaConsumer(
        *(settings.topic(topic) for topic in agreement_of(settings).case_topics),
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=8000,
    )
    try:
        return [CaseEvent.from_avro(codec.decode(m.value)) for m in consumer]
    finally:
        consumer.close()


def write_rows(profile: Profile, folder: Path, rows: list[dict[str, str]]) -> list[Path]:
    """The rows as the profile's own CSV/TSV (not for a JSON-lines profile) and as JSON
    lines, each with a planted key of its own the profile does not map."""
    extra = {"Zelda Quixotefield 9434765919": "DY1 4RT"}
    paths = []
    if profile.format != "jsonl":
        text = folder / f"{profile.agency}-planted.{profile.format}"
        headers = sorted({h for row in rows for h in row} | set(extra))
        with text.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, headers, delimiter=profile.delimiter)
            writer.writeheader()
            writer.writerows(row | extra for row in rows)
        paths.append(text)
    lines = folder / f"{profile.agency}-planted.jsonl"
    nested = {PLANTED_TEXT: {"Zelda": "9434765919"}}  # a key and a nested value: rejected
    items = [*(row | extra for row in rows), rows[0] | nested]
    lines.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
    return [*paths, lines]


def test_planted_free_text_in_every_field_leaves_no_trace(
    hub_settings: HubSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every shipped profile, every mapped field, through CSV/TSV, JSON lines and HTTP, to
    the real broker: the planted text reaches no topic, answer, log line or report."""
    profiles = [load_profile(name) for name in shipped_profiles()]
    partners = sorted({p.agency for p in profiles})
    agreement = write_agreement(tmp_path / "profiles-agreement.yaml", partners)
    settings = hub_settings.model_copy(update={"agreement": agreement})
    apply_topics(settings, declared_topics(settings, agreement_of(settings)))
    quarantine = tmp_path / "quarantine"
    answers: list[str] = []
    printed: list[str] = []
    area_rejects = 0
    caplog.set_level(logging.DEBUG, logger="adapters")
    caplog.set_level(logging.DEBUG, logger="hub")
    for profile in profiles:
        planted = list(planted_rows(profile))
        rows = [row for _, row in planted]
        with adapter_run(settings, profile.agency, None, quarantine=quarantine) as run:
            summaries = [run.ingest_file(path) for path in write_rows(profile, tmp_path, rows)]
            with serve(run, "127.0.0.1", free_port(), TOKENS) as endpoint:
                status, answer, text = post(endpoint, [*rows, {PLANTED_TEXT: [["x"]]}], TOKEN)
                assert status == 202, text
                answers.append(text)
                assert any(r["field"] == "other" for r in answer["rejected"])
                area_rejects += sum(1 for r in answer["rejected"] if r["field"] == "area")
            run.drain(timeout=60)
        for summary in summaries:
            printed += [str(e) for e in summary.rejected + summary.warnings]
            printed.append(summary.line())
            area_rejects += sum(1 for e in summary.rejected if e.field == "area")
        fields = {field for field, _ in planted}
        assert {"record_id", "occurred_on"} <= fields

    events = consume_events(settings)
    assert len(events) > 100  # the events really are there
    assert area_rejects == 2 * len(PLANTED_CELLS)  # counselling's area cells: file and push
    by_agency = {p.agency: p for p in profiles}
    areas = example_areas()
    for event in events:
        assert open_fields(event, by_agency[event.agency_id], areas, {"test"}) == []
        assert leaked(event.model_dump_json()) == []
    blob = all_bytes(settings)
    assert leaked(blob) == [], "planted text reached Kafka"
    reports = sorted(quarantine.glob("*.rejects.csv"))
    assert len(reports) >= 2 * len(profiles)
    for report in reports:
        assert leaked(report.read_text(encoding="utf-8")) == [], report.name
    for text in answers:
        assert leaked(text) == [], "planted text in an HTTP answer"
    assert leaked("\n".join(printed)) == [], "planted text in a printed rejection"
    assert leaked(caplog.text) == [], "planted text in a log line"
