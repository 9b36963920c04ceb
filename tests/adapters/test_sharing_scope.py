"""What each partner may share is the agreement's: an agency's profile narrows it, never
widens it, and an adapter whose profile asks for more refuses to start."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import pytest
import yaml

from adapters.runner import adapter_run
from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.agreement.model import load_agreement
from hub.errors import ConfigError, RecordError
from hub.minimise import UNKNOWN
from hub.models import CaseEvent, Outcome, Sex
from hub.settings import HubSettings
from tests.support.agreements import write_agreement
from tests.support.processes import hub

#: What the police profile shares (adapters/profiles/police.yaml), less `role`.
POLICE_WITHOUT_ROLE = ("age_band", "sex", "area_code", "platform_types", "outcome")


def agreement_sharing(
    settings: HubSettings, folder: Path, partners: Iterable[str], partner: str, shares: list[str]
) -> HubSettings:
    """`settings`, their agreement that of `partners`, `partner` sharing only `shares`."""
    path = write_agreement(folder / "narrowed.yaml", partners)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for each in data["partners"]:
        if each["id"] == partner:
            each["shares"] = shares
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return settings.model_copy(update={"agreement": path})


def police_export(path: Path) -> Path:
    header = "Occurrence Number,Occurrence Type,Date Reported,Nominal ID,Surname,Forename 1,DOB"
    path.write_text(f"{header}\nOC1,Crime,03/02/2026,P1,Lee,Ann,04/05/2012\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_profile_sharing_what_the_agreement_does_not_allow_is_refused_at_start(
    hub_settings: HubSettings, tmp_path: Path, command: str
) -> None:
    settings = agreement_sharing(
        hub_settings, tmp_path, ["police"], "police", list(POLICE_WITHOUT_ROLE)
    )
    export = police_export(tmp_path / "occurrences.csv")
    result = hub(settings, "adapter", command, "--profile", "police", str(export))
    assert result.returncode != 0
    assert "share: lists role" in result.stderr, result.stderr
    assert "partner police" in result.stderr and "HUB_AGREEMENT" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Lee" not in result.stdout + result.stderr
    assert not settings.outbox.exists()  # nothing read, nothing stored, nothing sent


def mapped(settings: HubSettings, export: Path, rows: list[dict[str, str]]) -> list[CaseEvent]:
    """The events of the rows of `export` the generic profile accepts, under `settings`."""
    events = []
    with adapter_run(settings, "generic", None, dry_run=True) as run:
        mapper = run.adapter.mapper(export.name)
        for number, row in enumerate(rows, start=2):
            with contextlib.suppress(RecordError):  # the synthetic mess: another test's
                events.append(mapper.map(number, row))
    return events


def test_a_profile_without_a_share_list_shares_what_the_agreement_allows(
    hub_settings: HubSettings, tmp_path: Path
) -> None:
    # The generic profile lists no fields to share.
    settings = agreement_sharing(hub_settings, tmp_path, ["generic"], "generic", ["age_band"])
    rows = synth_rows("generic", 200, 3, child_pool(50))
    export = tmp_path / "export.csv"
    write_csv(export, rows)
    events = mapped(settings, export, rows)
    assert len(events) > 100
    assert {e.sex for e in events} == {Sex.UNKNOWN}
    assert {e.outcome for e in events} == {Outcome.UNKNOWN}
    assert {e.area_code for e in events} == {UNKNOWN}
    assert len({e.age_band for e in events}) > 1  # the one field it may share is shared

    # The same export under the unchanged agreement: every field is shared.
    shared = mapped(hub_settings, export, rows)
    assert len({e.sex for e in shared}) > 1 and len({e.outcome for e in shared}) > 1


def test_the_agreement_names_a_field_it_cannot_list(tmp_path: Path) -> None:
    path = write_agreement(tmp_path / "a.yaml", ["police"])
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["partners"][0]["shares"] = ["age_band", "nhs_number"]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match="shares"):
        load_agreement(path)
    data["partners"][0]["shares"] = ["age_band", "age_band"]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError, match="more than once: age_band"):
        load_agreement(path)
