"""The data-sharing agreement: one YAML file, the single source of truth.

It names the partners (agency id, type, topic, Kafka principal, submission
deadline), the publication timetable (cron + timezone + the period each
publication closes), the disclosure rule (docs/architecture.md, invariant 5), who may read
which topic (invariant 7), the principals of the hub's own services (workers,
publisher), retention, the partnership's local risk codes and its areas (the
closed vocabulary of area values an agency may send: `hub.areas`).
ACLs, topic configs, the publisher's schedule and lateness metrics are derived
from it. The file is read by YAML 1.2 rules (`hub.yamlfile`). `check_agreement` (behind
``hub agreement check FILE``) lists every problem as ``<file>:<line>: <key>: <message>``;
`load_agreement` raises them all at once.

Cron expressions are evaluated on local wall-clock time in the agreement's
timezone, so "0 9 10 * *" in Europe/London is 09:00 local in winter (09:00
UTC) and in summer (08:00 UTC).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from hub.areas import Area, Areas, area_key
from hub.disclosure import DisclosureRule
from hub.errors import ConfigError
from hub.minimise import UNKNOWN, normalise_postcode
from hub.models import AgencyType
from hub.periods import period_before, period_containing
from hub.settings import case_topic_name
from hub.taxonomy import CELLS, LocalCode, Taxonomy, TaxonomyError
from hub.yamlfile import YamlSyntaxError, read_yaml

Loc = tuple[str | int, ...]
_TOPIC = r"^[A-Za-z0-9._-]{1,249}$"
_PRINCIPAL = r"^User:\S+$"
_SLUG = r"^[a-z][a-z0-9-]*$"
#: An area code: an ONS code (E08000027) or a slug (brierley-hill); no spaces.
_AREA_CODE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA timezone (e.g. Europe/London)") from exc
    return name


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cron(_Frozen):
    """A five-field cron expression (minute hour day-of-month month day-of-week), local time."""

    cron: str

    @field_validator("cron")
    @classmethod
    def _valid(cls, expression: str) -> str:
        if len(expression.split()) != 5 or not croniter.is_valid(expression):
            raise ValueError(
                f"{expression!r} is not a five-field cron expression "
                "(minute hour day-of-month month day-of-week)"
            )
        return expression


#: Event fields an agreement may or may not let a partner share. A field a partner does
#: not share reaches the hub as "not recorded"; the other fields of an event (its
#: record key and version, pseudonyms, agency, event type, dates, online component and
#: risk codes) are what every partner shares.
ShareableField = Literal[
    "age_band",
    "sex",
    "area_code",
    "vulnerabilities",
    "threshold_level",
    "platform_types",
    "role",
    "outcome",
]
ALL_SHAREABLE: tuple[ShareableField, ...] = get_args(ShareableField)


class Partner(_Frozen):
    id: str = Field(pattern=_SLUG)
    type: AgencyType
    topic: str = Field(pattern=_TOPIC)
    principal: str = Field(pattern=_PRINCIPAL)
    submit_by: Cron
    #: The shareable fields this partner may share; omitted, every one. An agency's
    #: profile may narrow this, never widen it (checked when its adapter starts).
    shares: tuple[ShareableField, ...] = ALL_SHAREABLE

    @field_validator("shares")
    @classmethod
    def _once_each(cls, shares: tuple[ShareableField, ...]) -> tuple[ShareableField, ...]:
        repeated = sorted({f for f in shares if shares.count(f) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return shares


class Schedule(_Frozen):
    """One publication: when it runs and which period it closes."""

    name: str = Field(pattern=_SLUG)
    closes: Literal["month", "quarter"]
    at: Cron
    topic: str = Field(pattern=_TOPIC)
    timezone: str | None = None
    #: ``two-person``: each release is staged, and published only when one of the
    #: agreement's approvers other than who staged it approves it (``hub release``).
    approval: Literal["automatic", "two-person"] = "automatic"

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, name: str | None) -> str | None:
        return None if name is None else _zone(name)


class Reader(_Frozen):
    principal: str = Field(pattern=_PRINCIPAL)
    topics: tuple[str, ...] = Field(min_length=1)


#: The principals of the hub's own services when the agreement names none.
DEFAULT_WORKERS_PRINCIPAL = "User:hub-workers"
DEFAULT_PUBLISHER_PRINCIPAL = "User:hub-publisher"


class Service(_Frozen):
    """One of the hub's own services, by the principal it logs in to Kafka as."""

    principal: str = Field(pattern=_PRINCIPAL)


class Services(_Frozen):
    """The principals the hub's own services log in as; the ACLs grant each exactly what
    it needs (`hub.ops.acls`). The section and each entry are optional; the defaults are
    ``workers: {principal: User:hub-workers}`` (``hub streams worker``) and
    ``publisher: {principal: User:hub-publisher}`` (``hub streams publisher``,
    ``hub publish --now``)."""

    workers: Service = Service(principal=DEFAULT_WORKERS_PRINCIPAL)
    publisher: Service = Service(principal=DEFAULT_PUBLISHER_PRINCIPAL)


class Retention(_Frozen):
    """How long each store keeps what it holds: the hub's topics (`hub topics apply` sets
    it), the agency's outbox and quarantine reports (each adapter run applies it)."""

    #: Days a case event stays on its partner's case topic (and on the deferred topic).
    case_events_days: int = Field(ge=1)
    #: Days a published cell stays on its publication topic; None: kept.
    trends_days: int | None = Field(default=None, ge=1)
    #: Days an entry stays on the audit topic (`hub.audit`); None: kept.
    audit_days: int | None = Field(default=None, ge=1)
    #: Days the agency's outbox keeps an event after Kafka acknowledged it (None: 30, or
    #: case_events_days if shorter). A live record's last event stays while the record is
    #: live: a later full export that no longer lists it withdraws it from that event.
    outbox_sent_days: int | None = Field(default=None, ge=1)
    #: Days a quarantine report (rejected rows, at the agency) is kept (None: 90, or
    #: case_events_days if shorter).
    quarantine_days: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _within_case_events(self) -> Retention:
        for name in ("outbox_sent_days", "quarantine_days"):
            days = getattr(self, name)
            if days is not None and days > self.case_events_days:
                raise ValueError(
                    f"{name} ({days}) is longer than case_events_days"
                    f" ({self.case_events_days}): nothing about a case is kept longer than"
                    " its events"
                )
        return self

    @property
    def outbox_days(self) -> int:
        """Days a sent event stays in the agency's outbox."""
        return self.outbox_sent_days or min(30, self.case_events_days)

    @property
    def quarantine_keep_days(self) -> int:
        """Days a quarantine report stays at the agency."""
        return self.quarantine_days or min(90, self.case_events_days)


class Audit(_Frozen):
    """Who may read the audit trail (`hub.audit`, ``hub audit``) besides the operator:
    an information-governance lead, an auditor. Nobody else reads it."""

    readers: tuple[str, ...] = ()

    @field_validator("readers")
    @classmethod
    def _principals(cls, readers: tuple[str, ...]) -> tuple[str, ...]:
        for reader in readers:
            if not re.fullmatch(_PRINCIPAL, reader):
                raise ValueError(f"{reader!r} is not a principal such as User:ig-lead")
        if len(set(readers)) != len(readers):
            raise ValueError("a reader is listed twice")
        return readers


class Approval(_Frozen):
    """Who may approve or reject a staged release of a two-person publication
    (``hub release``): never the principal that staged it."""

    approvers: tuple[str, ...] = ()

    @field_validator("approvers")
    @classmethod
    def _principals(cls, approvers: tuple[str, ...]) -> tuple[str, ...]:
        for approver in approvers:
            if not re.fullmatch(_PRINCIPAL, approver):
                raise ValueError(f"{approver!r} is not a principal such as User:ig-lead")
        if len(set(approvers)) != len(approvers):
            raise ValueError("an approver is listed twice")
        return approvers


class LocalRiskCode(_Frozen):
    code: str
    cell: str
    label: str = ""


def _area_term(term: str) -> str:
    """A code, name or alias of an area: printable text that identifies no one."""
    if not term.strip() or not term.isprintable():
        raise ValueError("must be printable text, not blank")
    if area_key(term) == UNKNOWN:
        raise ValueError(f"{UNKNOWN!r} is the value of an area not recorded; it names no area")
    if normalise_postcode(term) is not None:
        raise ValueError("a full postcode is not an area; list the area it lies in")
    return term


class AreaEntry(_Frozen):
    """One area of the partnership. An agency's area cell must name it (by code, name or
    alias, ignoring case and spacing); the event carries its code (`hub.areas`)."""

    code: str = Field(pattern=_AREA_CODE)
    name: str = Field(max_length=100)
    aliases: tuple[str, ...] = ()

    @field_validator("code", "name")
    @classmethod
    def _valid_term(cls, term: str) -> str:
        return _area_term(term)

    @field_validator("aliases")
    @classmethod
    def _valid_aliases(cls, aliases: tuple[str, ...]) -> tuple[str, ...]:
        for alias in aliases:
            if len(alias) > 100:
                raise ValueError("an alias has at most 100 characters")
            _area_term(alias)
        return aliases


HeadlineKey = Literal["events", "children", "multi_agency", "data_gap"]
PolarityName = Literal["lower is better", "higher is better", "no judgement"]


class ReportPolicy(_Frozen):
    """How the board pack (`hub report`) colours a significant recent trend: the
    partnership's call, per headline. Unlisted headlines keep the pack's defaults
    (the data gap: lower is better; counts of recorded harm: no judgement)."""

    polarity: dict[HeadlineKey, PolarityName] = Field(default_factory=dict)


class Agreement(_Frozen):
    partnership: str = Field(pattern=_SLUG)
    timezone: str
    partners: tuple[Partner, ...] = Field(min_length=1)
    publication: tuple[Schedule, ...] = Field(min_length=1)
    #: Statistical disclosure control (docs/architecture.md, invariant 5).
    disclosure: DisclosureRule = Field(default_factory=DisclosureRule)
    readers: tuple[Reader, ...] = ()
    #: The hub's own principals (defaults: User:hub-workers, User:hub-publisher).
    services: Services = Field(default_factory=Services)
    #: Who reads the audit trail besides the operator.
    audit: Audit = Field(default_factory=Audit)
    #: Who approves the staged releases of two-person publications.
    approval: Approval = Field(default_factory=Approval)
    retention: Retention
    local_risk_codes: tuple[LocalRiskCode, ...] = ()
    #: The closed vocabulary of area cells (none listed: no area cell is accepted).
    areas: tuple[AreaEntry, ...] = ()
    report: ReportPolicy = Field(default_factory=ReportPolicy)

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, name: str) -> str:
        return _zone(name)

    @model_validator(mode="wrap")
    @classmethod
    def _whole_agreement(
        cls, data: Any, handler: ModelWrapValidatorHandler[Agreement]
    ) -> Agreement:
        """Cross-field checks run on the raw input too, so one pass reports every problem."""
        conflicts = list(_cross_field_problems(data)) if isinstance(data, Mapping) else []
        try:
            agreement = handler(data)
        except ValidationError as exc:
            if not conflicts:
                raise
            raise _validation_error([*_reinit(exc), *conflicts]) from None
        if conflicts:
            raise _validation_error(conflicts)
        return agreement

    @cached_property
    def taxonomy(self) -> Taxonomy:
        return Taxonomy(LocalCode(c.code, c.cell, c.label) for c in self.local_risk_codes)

    @cached_property
    def area_vocabulary(self) -> Areas:
        """The areas an agency's area cell may name, by code, name or alias."""
        return Areas(Area(a.code, a.name, a.aliases) for a in self.areas)

    @property
    def case_topics(self) -> tuple[str, ...]:
        """Each partner's case topic (before the hub's namespace), in agreement order."""
        return tuple(p.topic for p in self.partners)

    @property
    def publication_topics(self) -> tuple[str, ...]:
        """Each topic a publication is released to, once, in agreement order."""
        return tuple(dict.fromkeys(s.topic for s in self.publication))

    def partner(self, partner_id: str) -> Partner:
        for partner in self.partners:
            if partner.id == partner_id:
                return partner
        known = ", ".join(p.id for p in self.partners)
        raise ConfigError(f"no partner {partner_id!r} in the agreement; partners: {known}")

    def schedule(self, name: str) -> Schedule:
        for schedule in self.publication:
            if schedule.name == name:
                return schedule
        known = ", ".join(s.name for s in self.publication)
        raise ConfigError(f"no publication {name!r} in the agreement; publications: {known}")

    def zone_of(self, schedule: Schedule) -> ZoneInfo:
        return ZoneInfo(schedule.timezone or self.timezone)

    def next_publication(self, schedule_name: str, after: datetime) -> datetime:
        """The first scheduled time strictly after `after`, zone-aware in the schedule's zone."""
        schedule = self.schedule(schedule_name)
        return next_local(schedule.at.cron, self.zone_of(schedule), after)

    def previous_publication(self, schedule_name: str, at: datetime) -> datetime:
        """The last scheduled time at or before `at`, zone-aware in the schedule's zone."""
        schedule = self.schedule(schedule_name)
        return previous_local(schedule.at.cron, self.zone_of(schedule), at)

    def closed_period(self, schedule_name: str, at: datetime) -> tuple[date, date]:
        """The period (inclusive start, end) that this schedule's publication at `at` closes."""
        schedule = self.schedule(schedule_name)
        local = aware(at).astimezone(self.zone_of(schedule)).date()
        return period_before(schedule.closes, period_containing(schedule.closes, local))


def next_local(cron: str, zone: ZoneInfo, after: datetime) -> datetime:
    """Next time matching `cron` on `zone`'s wall clock, strictly after the instant `after`.

    croniter walks naive local time, so a 09:00 schedule stays 09:00 local across
    daylight-saving changes. A wall time repeated when clocks go back runs once
    (the first); one skipped when clocks go forward runs an hour later. A result in
    the repeated hour never compares equal to another zone's datetime (PEP 495):
    compare ``result.astimezone(UTC)``.
    """
    return following_local(cron, zone, after)


_SLACK = timedelta(days=1)


def _instant(cron_wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a cron wall time names, as the timetable reads it, in UTC."""
    # Through UTC so a wall time in the spring gap becomes a real one (01:30 -> 02:30 BST),
    # and one in the repeated hour the first of the two (fold=0).
    return cron_wall.replace(tzinfo=zone).astimezone(UTC)


def previous_local(cron: str, zone: ZoneInfo, at: datetime) -> datetime:
    """Latest time matching `cron` on `zone`'s wall clock at or before the instant `at`.

    A wall time skipped when
    clocks go forward is an hour later, a repeated one is the first. Near a clock
    change wall-clock order is not time order (01:15 GMT on the repeated hour is
    after 01:30 BST), so the walk starts a day ahead and looks a day past the first
    match for a later one.
    """
    instant = aware(at).astimezone(UTC)
    walker = croniter(cron, instant.astimezone(zone).replace(tzinfo=None) + _SLACK)
    while True:
        wall: datetime = walker.get_prev(datetime)
        best = _instant(wall, zone)
        if best <= instant:
            break
    stop = wall - _SLACK
    while (wall := walker.get_prev(datetime)) >= stop:
        candidate = _instant(wall, zone)
        if best < candidate <= instant:
            best = candidate
    return best.astimezone(zone)


def following_local(cron: str, zone: ZoneInfo, after: datetime) -> datetime:
    """Earliest time matching `cron` on `zone`'s wall clock strictly after the instant `after`.

    A wall time skipped when clocks go forward is an hour later (and found even
    when `after` lies between the gap and the shifted time); a repeated one is
    the first.
    """
    instant = aware(after).astimezone(UTC)
    walker = croniter(cron, instant.astimezone(zone).replace(tzinfo=None) - _SLACK)
    while True:
        wall: datetime = walker.get_next(datetime)
        best = _instant(wall, zone)
        if best > instant:
            break
    stop = wall + _SLACK
    while (wall := walker.get_next(datetime)) <= stop:
        candidate = _instant(wall, zone)
        if instant < candidate < best:
            best = candidate
    return best.astimezone(zone)


def aware(moment: datetime) -> datetime:
    """`moment`, or a ValueError when it has no timezone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no timezone; pass an aware datetime")
    return moment


# -- cross-field checks on the raw mapping, tolerant of items that fail elsewhere --


def _items(data: Mapping[str, Any], key: str) -> Iterator[tuple[int, Mapping[str, Any]]]:
    value = data.get(key)
    if isinstance(value, list):
        yield from ((i, item) for i, item in enumerate(value) if isinstance(item, Mapping))


def _unique(
    data: Mapping[str, Any], section: str, field: str, what: str
) -> Iterator[InitErrorDetails]:
    seen: dict[str, int] = {}
    for i, item in _items(data, section):
        value = item.get(field)
        if not isinstance(value, str):
            continue
        if value in seen:
            where = f"{section}[{seen[value]}].{field}"
            yield _problem((section, i, field), f"duplicate {what} {value!r} (first at {where})")
        else:
            seen[value] = i


def _partner_topics(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    for i, partner in _items(data, "partners"):
        pid, topic = partner.get("id"), partner.get("topic")
        if isinstance(pid, str) and isinstance(topic, str) and topic != case_topic_name(pid):
            message = f"partner {pid!r} must use topic {case_topic_name(pid)}"
            yield _problem(("partners", i, "topic"), message)


def _publication_topics(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    for i, schedule in _items(data, "publication"):
        topic = schedule.get("topic")
        if isinstance(topic, str) and topic.startswith("cases."):
            yield _problem(
                ("publication", i, "topic"), "publish to an aggregate topic, not cases.*"
            )


def _reader_topics(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    published = {s.get("topic") for _, s in _items(data, "publication")}
    for i, reader in _items(data, "readers"):
        topics = reader.get("topics")
        for j, topic in enumerate(topics if isinstance(topics, list) else []):
            if isinstance(topic, str) and topic not in published:
                message = f"{topic!r} is not a publication topic; readers see aggregates only"
                yield _problem(("readers", i, "topics", j), message)


_SERVICE_DEFAULTS = {
    "workers": DEFAULT_WORKERS_PRINCIPAL,
    "publisher": DEFAULT_PUBLISHER_PRINCIPAL,
}


def _principals(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    """Each partner, reader and service logs in as a principal of its own: one shared by
    two of them would get the ACLs of both."""
    # (location, principal, how it is named there), a service's default first: a clash
    # with one is reported where the agreement names the principal.
    uses: list[tuple[Loc, Any, str]] = []
    named: list[tuple[Loc, Any, str]] = []
    services = data.get("services", {})
    if isinstance(services, Mapping):
        for name, default in _SERVICE_DEFAULTS.items():
            loc: Loc = ("services", name, "principal")
            if name not in services:
                uses.append((loc, default, " (the default)"))
            elif isinstance(entry := services[name], Mapping):
                named.append((loc, entry.get("principal"), ""))
    for section in ("partners", "readers"):
        uses.extend(
            ((section, i, "principal"), e.get("principal"), "") for i, e in _items(data, section)
        )
    uses.extend(named)
    approval = data.get("approval")
    approvers = approval.get("approvers") if isinstance(approval, Mapping) else None
    for i, approver in enumerate(approvers if isinstance(approvers, list) else []):
        uses.append((("approval", "approvers", i), approver, ""))
    first: dict[str, str] = {}
    for loc, principal, how in uses:
        if not isinstance(principal, str):
            continue
        where = format_loc(loc) + how
        if principal in first:
            message = (
                f"principal {principal!r} is already used at {first[principal]}; each partner,"
                " reader, service and approver needs a principal of its own"
            )
            yield _problem(loc, message)
        else:
            first[principal] = where


def _approvers(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    """A two-person publication needs someone to approve its releases."""
    approval = data.get("approval")
    approvers = approval.get("approvers") if isinstance(approval, Mapping) else None
    if approvers:
        return
    for i, entry in _items(data, "publication"):
        if entry.get("approval") == "two-person":
            message = (
                "a two-person publication needs approvers: list them under"
                " approval.approvers (principals such as User:ig-lead)"
            )
            yield _problem(("publication", i, "approval"), message)


def _local_codes(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    accepted: list[LocalCode] = []
    for i, entry in _items(data, "local_risk_codes"):
        code, cell = entry.get("code"), entry.get("cell")
        if not (isinstance(code, str) and isinstance(cell, str)):
            continue
        local = LocalCode(code, cell)
        try:
            Taxonomy([*accepted, local])
        except TaxonomyError as exc:
            field = "cell" if cell not in CELLS else "code"
            yield _problem(("local_risk_codes", i, field), str(exc))
        else:
            accepted.append(local)


def _area_terms(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    """A code, name or alias may name one area only (it may repeat within its own entry)."""
    owner: dict[str, tuple[int, str]] = {}  # area_key(term) -> (entry, its code)
    for i, entry in _items(data, "areas"):
        code = entry.get("code")
        aliases = entry.get("aliases")
        terms: list[tuple[Loc, Any]] = [(("areas", i, "code"), code)]
        terms.append((("areas", i, "name"), entry.get("name")))
        for j, alias in enumerate(aliases if isinstance(aliases, list) else []):
            terms.append((("areas", i, "aliases", j), alias))
        for loc, term in terms:
            if not isinstance(term, str) or not term.strip():
                continue
            first, first_code = owner.setdefault(area_key(term), (i, str(code)))
            if first != i:
                message = f"{term!r} already names the area {first_code!r} (areas[{first}])"
                yield _problem(loc, message)


def _cross_field_problems(data: Mapping[str, Any]) -> Iterator[InitErrorDetails]:
    yield from _unique(data, "partners", "id", "partner id")
    yield from _unique(data, "partners", "topic", "topic")
    yield from _partner_topics(data)
    yield from _unique(data, "publication", "name", "publication name")
    yield from _publication_topics(data)
    yield from _reader_topics(data)
    yield from _principals(data)
    yield from _approvers(data)
    yield from _local_codes(data)
    yield from _area_terms(data)


def _problem(loc: Loc, message: str) -> InitErrorDetails:
    return {"type": PydanticCustomError("agreement", message), "loc": loc, "input": None}


def _reinit(exc: ValidationError) -> Iterator[InitErrorDetails]:
    """The handler's errors, messages kept verbatim, to merge with the cross-field ones."""
    for error in exc.errors():
        custom = PydanticCustomError(error["type"], error["msg"])
        yield {"type": custom, "loc": error["loc"], "input": error["input"]}


def _validation_error(problems: list[InitErrorDetails]) -> ValidationError:
    return ValidationError.from_exception_data("Agreement", problems)


# -- loading --


class AgreementError(ConfigError):
    """An agreement file with problems; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def format_loc(loc: Loc) -> str:
    """('partners', 2, 'submit_by', 'cron') -> partners[2].submit_by.cron"""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    return text.lstrip(".") or "(top level)"


def _parse(path: Path) -> Agreement:
    try:
        document = read_yaml(path)
    except OSError as exc:
        raise AgreementError([f"{path}: (file): cannot read it: {exc.strerror or exc}"]) from exc
    except YamlSyntaxError as exc:
        raise AgreementError([str(exc)]) from exc
    try:
        return Agreement.model_validate(document.data)
    except ValidationError as exc:
        problems = [
            f"{document.where(e['loc'])}: {format_loc(e['loc'])}: {e['msg']}" for e in exc.errors()
        ]
        raise AgreementError(problems) from exc


def load_agreement(path: str | Path) -> Agreement:
    """The agreement in `path`; raises AgreementError (a ConfigError) naming every problem."""
    return _parse(Path(path))


def check_agreement(path: str | Path) -> list[str]:
    """One "<file>:<line>: <location>: <message>" line per problem (a file that cannot be
    read: "<file>: (file): ..."; not YAML: "<file>:<line>:<column>: not valid YAML: ...");
    empty when the agreement is fine."""
    try:
        _parse(Path(path))
    except AgreementError as exc:
        return exc.problems
    return []
