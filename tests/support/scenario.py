"""A publication scenario with known ground truth: several agencies, children known to
more than one, replays, corrections, withdrawals, and late data after a publication.

Events are built as the adapters build them (CaseEvent, Avro single-object
encoding, keyed by subject pseudonym) and sent straight to the agency topics,
so the scenario controls every date, version and duplicate.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from kafka import KafkaConsumer, KafkaProducer

from hub.codec import Codec
from hub.disclosure import DisclosureRule
from hub.models import (
    AgencyType,
    CaseEvent,
    EventType,
    LinkageBasis,
    OnlineComponent,
    Outcome,
    Pseudonym,
    Role,
    Sex,
    Vulnerability,
)
from hub.periods import Period
from hub.settings import HubSettings
from hub.taxonomy import STARTER_CODES, Taxonomy
from streams.aggregate import Cell, period_cells
from streams.records import RecordVersion

AGENCY_TYPES = {
    "camhs": AgencyType.CAMHS,
    "police": AgencyType.POLICE,
    "spa": AgencyType.CHILDRENS_SOCIAL_CARE,
}
CODES = sorted(STARTER_CODES)[:8]  # a few codes, so cells are big enough to publish


def hexid(rnd: random.Random) -> str:
    return f"{rnd.getrandbits(256):064x}"


@dataclass
class Scenario:
    rnd: random.Random
    agencies: tuple[str, ...]
    children: list[str]
    events: list[CaseEvent] = field(default_factory=list)  # every distinct event sent
    latest: dict[str, CaseEvent] = field(default_factory=dict)  # record key -> last version

    @classmethod
    def create(cls, agencies: Iterable[str], children: int, seed: int) -> Scenario:
        rnd = random.Random(seed)
        return cls(rnd, tuple(agencies), [hexid(rnd) for _ in range(children)])

    def _event(
        self, agency: str, record_key: str, version: int, occurred: date, subject: str | None
    ) -> CaseEvent:
        rnd = self.rnd
        online = rnd.choices(list(OnlineComponent), weights=[8, 1, 1])[0]
        return CaseEvent(
            event_id=hexid(rnd),
            agency_id=agency,
            agency_type=AGENCY_TYPES[agency],
            event_type=rnd.choice([EventType.REFERRAL, EventType.ASSESSMENT, EventType.INCIDENT]),
            record_key=record_key,
            record_version=version,
            subject=Pseudonym(value=subject, key_id="k-test", basis=LinkageBasis.NHS_NUMBER)
            if subject
            else None,
            occurred_on=occurred,
            reported_at=datetime(2026, 11, 1, tzinfo=UTC),
            age_band=rnd.choice(["8-10", "11-13", "14-15", "16-17"]),
            sex=rnd.choice([Sex.FEMALE, Sex.MALE, Sex.UNKNOWN]),
            area_code=rnd.choice(["E05000001", "E05000002", "E05000003"]),
            vulnerabilities=tuple(rnd.sample(list(Vulnerability)[:3], rnd.randint(0, 1))),
            threshold_level=rnd.choice([1, 2, 3, None]),
            online_component=online,
            online_risks=tuple(rnd.sample(CODES, rnd.randint(1, 2)))
            if online is OnlineComponent.YES
            else (),
            role=rnd.choice([Role.VICTIM, Role.UNKNOWN]),
            outcome=rnd.choice([Outcome.ADVICE_GIVEN, Outcome.EARLY_HELP, Outcome.ONGOING]),
        )

    def _day(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rnd.randint(0, (last - first).days))

    def new_records(
        self, count: int, first: date, last: date, area: str | None = None
    ) -> list[CaseEvent]:
        """`count` first versions, children drawn from the shared pool (so known to several
        agencies), 1 in 20 without a linkable subject. With `area`, all in that area with
        an online component (a small area: its cells get suppressed)."""
        made = []
        for _ in range(count):
            agency = self.rnd.choice(self.agencies)
            subject = None if self.rnd.random() < 0.05 else self.rnd.choice(self.children)
            event = self._event(agency, hexid(self.rnd), 1, self._day(first, last), subject)
            if area is not None:
                event = event.model_copy(
                    update={
                        "area_code": area,
                        "online_component": OnlineComponent.YES,
                        "online_risks": event.online_risks or (CODES[0],),
                    }
                )
            made.append(event)
        return self._keep(made)

    def corrections(self, count: int, among: list[CaseEvent]) -> list[CaseEvent]:
        """Higher versions of `count` records: new dimensions, same child and agency."""
        made = []
        for old in self.rnd.sample(among, count):
            held = self.latest[old.record_key]
            subject = held.subject.value if held.subject else None
            made.append(
                self._event(
                    held.agency_id,
                    held.record_key,
                    held.record_version + 1,
                    held.occurred_on,
                    subject,
                )
            )
        return self._keep(made)

    def withdrawals(self, count: int, among: list[CaseEvent]) -> list[CaseEvent]:
        made = []
        for old in self.rnd.sample(among, count):
            held = self.latest[old.record_key]
            made.append(
                held.model_copy(
                    update={
                        "event_id": hexid(self.rnd),
                        "event_type": EventType.WITHDRAWN,
                        "record_version": held.record_version + 1,
                    }
                )
            )
        return self._keep(made)

    def _keep(self, made: list[CaseEvent]) -> list[CaseEvent]:
        for event in made:
            self.events.append(event)
            held = self.latest.get(event.record_key)
            if held is None or event.record_version > held.record_version:
                self.latest[event.record_key] = event
        return made

    def truth(self) -> list[RecordVersion]:
        """Each record's highest version, computed here from what was sent, once."""
        return [RecordVersion.from_event(e.to_avro()) for e in self.latest.values()]

    def expected(
        self, period: Period, taxonomy: Taxonomy, partners: list[str], rule: DisclosureRule
    ) -> list[Cell]:
        return period_cells(self.truth(), period[0], period[1], taxonomy, partners, rule)


def send(settings: HubSettings, events: list[CaseEvent], rnd: random.Random, replay: float) -> int:
    """Send `events` in a shuffled order, a `replay` share of them twice; messages sent."""
    codec = Codec("case_event")
    messages = list(events) + rnd.sample(events, int(len(events) * replay))
    rnd.shuffle(messages)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=20)
    try:
        for event in messages:
            key = (event.subject.value if event.subject else event.record_key).encode()
            producer.send(
                settings.case_topic(event.agency_id),
                key=key,
                value=codec.encode(event.to_avro()),
            )
        producer.flush()
    finally:
        producer.close()
    return len(messages)


def read_trends(settings: HubSettings) -> list[tuple[bytes, bytes]]:
    """Every (key, value) on the trends topic, in offset order per partition."""
    consumer = KafkaConsumer(
        settings.trends_topic,
        bootstrap_servers=settings.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
        group_id=f"read-{secrets.token_hex(4)}",
    )
    try:
        return [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()
