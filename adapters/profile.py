"""Mapping profiles: how one agency's export becomes case events, declared in YAML.

A profile names, for each canonical field, the header variants the agency's
exports use; maps the agency's own vocabulary (event types, risk terms,
outcomes, ...) to the hub's codes; lists the date formats to try, the text
encodings to try, which fields hold identifiers, and which event fields the
data-sharing agreement lets this agency share. Shipped profiles live in
``adapters/profiles/``; `load_profile` takes a shipped name or a path and reads it by
YAML 1.2 rules (`hub.yamlfile`): an export's ``Yes``/``No``/``on``/``off`` written as
unquoted keys of a value map stay those words. Its errors name the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hub import resources
from hub.agreement.model import ShareableField
from hub.errors import ConfigError
from hub.models import (
    AgencyType,
    EventType,
    OnlineComponent,
    Outcome,
    PlatformType,
    Role,
    Sex,
    Vulnerability,
)
from hub.yamlfile import read_yaml

PROFILES_DIR = resources.profiles()

#: Canonical source fields a profile can map columns to.
SourceField = Literal[
    "record_id",
    "record_version",
    "event_type",
    "occurred_on",
    "nhs_number",
    "local_id",
    "family_name",
    "given_name",
    "date_of_birth",
    "age",
    "sex",
    "postcode",
    "area",
    "online_component",
    "risk",
    "platform",
    "role",
    "outcome",
    "threshold_level",
    "case_id",
]
IdentifierField = Literal[
    "nhs_number",
    "local_id",
    "family_name",
    "given_name",
    "date_of_birth",
    "postcode",
    "case_id",
]


def vocabulary_key(text: str) -> str:
    """How vocabulary and headers are matched: trimmed, case-folded, inner whitespace collapsed."""
    return " ".join(text.replace("\ufeff", "").split()).casefold()


class ValueMaps(BaseModel):
    """The agency's words -> the hub's codes. Keys are matched by `vocabulary_key`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: dict[str, EventType] = Field(default_factory=dict)
    online_component: dict[str, OnlineComponent] = Field(default_factory=dict)
    risk: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    sex: dict[str, Sex] = Field(default_factory=dict)
    role: dict[str, Role] = Field(default_factory=dict)
    outcome: dict[str, Outcome] = Field(default_factory=dict)
    platform: dict[str, tuple[PlatformType, ...]] = Field(default_factory=dict)
    threshold_level: dict[str, int] = Field(default_factory=dict)

    @field_validator("*", mode="after")
    @classmethod
    def _normalise_keys(cls, value: dict[str, object]) -> dict[str, object]:
        return {vocabulary_key(k): v for k, v in value.items()}


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agency: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    agency_type: AgencyType
    description: str = ""
    format: Literal["csv", "tsv", "jsonl"] = "csv"
    #: The sheet of a workbook (.xlsx, .xls, .ods) to read; by default the first visible one.
    sheet: str | None = None
    encodings: tuple[str, ...] = ("utf-8-sig", "cp1252")
    columns: dict[SourceField, tuple[str, ...]]
    vulnerability_columns: dict[Vulnerability, tuple[str, ...]] = Field(default_factory=dict)
    truthy: tuple[str, ...] = ("y", "yes", "true", "1", "x")
    date_formats: tuple[str, ...] = ("%Y-%m-%d",)
    multi_value_separator: str = ";"
    values: ValueMaps = Field(default_factory=ValueMaps)
    default_event_type: EventType = EventType.CONTACT
    identifiers: tuple[IdentifierField, ...] = ()
    #: The shareable fields this agency's adapter shares: the agreement's ``shares`` for
    #: its partner narrowed, never widened; omitted, the agreement's (``sharing_scope``).
    share: tuple[ShareableField, ...] | None = None
    #: The canonical fields whose values together identify one source record (one
    #: row of the export): e.g. police, one row per person per occurrence:
    #: [record_id, local_id]. Two rows of one export never share it.
    record_identity: tuple[SourceField, ...] = ("record_id",)
    #: ``full``: every export holds every live record, so a record missing from a
    #: later export was deleted at the agency (withdrawn). ``incremental``: an
    #: export holds the records new or changed since the last one.
    export: Literal["full", "incremental"] = "incremental"
    #: Whether the agency's system records the online component at all. By default,
    #: when the profile maps an online-component column. Without one, a record with
    #: no online-risk code is "not recorded", not "not assessed".
    online_component_recorded: bool | None = None

    @field_validator("columns")
    @classmethod
    def _needs_record_and_date(
        cls, columns: dict[SourceField, tuple[str, ...]]
    ) -> dict[SourceField, tuple[str, ...]]:
        for required in ("record_id", "occurred_on"):
            if not columns.get(required):
                raise ValueError(f"columns must name the {required} column")
        return columns

    @field_validator("record_identity")
    @classmethod
    def _identity_starts_with_record_id(
        cls, identity: tuple[SourceField, ...]
    ) -> tuple[SourceField, ...]:
        if not identity or identity[0] != "record_id" or len(set(identity)) != len(identity):
            raise ValueError("must start with record_id and name each field once")
        forbidden = {"record_version"} & set(identity)
        if forbidden:
            raise ValueError("cannot include record_version: a version is not an identity")
        return identity

    @model_validator(mode="after")
    def _identity_columns_mapped(self) -> Profile:
        unmapped = [f for f in self.record_identity if not self.columns.get(f)]
        if unmapped:
            raise ValueError(f"record_identity names fields with no column: {', '.join(unmapped)}")
        return self

    @property
    def records_online_component(self) -> bool:
        if self.online_component_recorded is not None:
            return self.online_component_recorded
        return bool(self.columns.get("online_component"))

    @property
    def versioned(self) -> bool:
        """True when the export has a version column (else the adapter derives versions)."""
        return bool(self.columns.get("record_version"))

    @field_validator("date_formats")
    @classmethod
    def _formats_parse(cls, formats: tuple[str, ...]) -> tuple[str, ...]:
        for fmt in formats:
            if not re.search(r"%[dYmbBy]", fmt):
                raise ValueError(f"date format {fmt!r} has no day, month or year directive")
        return formats

    @property
    def delimiter(self) -> str:
        return "\t" if self.format == "tsv" else ","


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (e.g. camhs) or a profile file by path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILES_DIR / f"{name_or_path}.yaml"
    try:
        document = read_yaml(path)
    except OSError as exc:
        known = ", ".join(shipped_profiles())
        raise ConfigError(
            f"no profile {name_or_path!r} ({exc}); shipped profiles: {known}"
        ) from exc
    try:
        return Profile.model_validate(document.data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{document.where(error['loc'])}: {'.'.join(str(p) for p in error['loc'])}:"
            f" {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigError(problems) from exc


def sharing_scope(
    profile: Profile, agency: str, allowed: tuple[ShareableField, ...]
) -> tuple[ShareableField, ...]:
    """The shareable fields `agency`'s adapter shares with `profile`: the profile's
    ``share`` list when it has one, the agreement's (`allowed`) otherwise.

    ConfigError, naming the fields, when the profile lists one the agreement does not
    let the partner share: a profile may narrow the agreement, never widen it."""
    if profile.share is None:
        return allowed
    wider = [f for f in profile.share if f not in allowed]
    if wider:
        raise ConfigError(
            f"profile {profile.agency}: share: lists {', '.join(wider)}, which the"
            f" data-sharing agreement does not let partner {agency} share (its shares:"
            f" {', '.join(allowed) or 'none'}). Remove them from the profile's share: list,"
            " or have the agreement amended (HUB_AGREEMENT)"
        )
    return profile.share
