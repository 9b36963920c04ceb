"""`hub adapter check` and `hub synth`, run as an agency IT team would."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.profile import shipped_profiles
from adapters.synth.cases import child_pool, synth_rows, write_csv
from hub.settings import HubSettings
from tests.support.processes import hub


def test_check_reports_accepted_and_rejected_by_reason(
    hub_settings: HubSettings, tmp_path: Path
) -> None:
    path = tmp_path / "export.csv"
    write_csv(path, synth_rows("camhs", 400, 2, child_pool(100)))
    result = hub(hub_settings, "adapter", "check", "--profile", "generic", str(path))
    assert result.returncode == 0, result.stderr
    assert "rejected: nhs_number: an NHS number has ten digits" in result.stdout
    assert "400 rows read" in result.stdout and " new, " in result.stdout
    assert not hub_settings.outbox.exists()  # a dry run stores nothing


def test_check_on_a_file_with_no_usable_rows_fails_with_advice(
    hub_settings: HubSettings, tmp_path: Path
) -> None:
    path = tmp_path / "wrong.csv"
    path.write_text("Name,Favourite colour\nZara Nowak,green\n")
    result = hub(hub_settings, "adapter", "check", "--profile", "generic", str(path))
    assert result.returncode == 1
    assert "no usable rows" in result.stderr and "generic profile" in result.stderr
    assert "Zara" not in result.stderr + result.stdout


@pytest.mark.parametrize("agency", shipped_profiles())
def test_every_shipped_synthetic_export_checks_clean(
    hub_settings: HubSettings, tmp_path: Path, agency: str
) -> None:
    export = tmp_path / f"{agency}.export"
    made = hub(hub_settings, "synth", "--agency", agency, "--rows", "300", "--out", str(export))
    assert made.returncode == 0, made.stderr
    result = hub(hub_settings, "adapter", "check", "--profile", agency, str(export))
    assert result.returncode == 0, result.stderr
    assert " new, " in result.stdout
    assert " rejected: " in result.stdout  # the mess is reported, by reason


POLICE_HEADER = "Occurrence Number,Occurrence Type,Date Reported,Nominal ID,Surname,Forename 1,DOB"


def police_export(path: Path, occurrences: range) -> Path:
    rows = [f"OC{i},Crime,03/02/2026,P{i},Lee,Ann,04/05/2012" for i in occurrences]
    path.write_text("\n".join([POLICE_HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def test_a_full_export_that_drops_half_its_records_waits_for_confirmation(
    topics: HubSettings, tmp_path: Path
) -> None:
    first = police_export(tmp_path / "jan.csv", range(10))
    result = hub(topics, "adapter", "run", "--profile", "police", str(first))
    assert result.returncode == 0, result.stderr
    assert "10 rows read; 10 new, 0 corrected, 0 withdrawn, 0 unchanged" in result.stdout
    half = police_export(tmp_path / "feb.csv", range(5))
    refused = hub(topics, "adapter", "run", "--profile", "police", str(half))
    assert refused.returncode == 1
    assert "5 live records this full export does not list were NOT withdrawn" in refused.stderr
    assert "--accept-withdrawals" in refused.stderr and "Traceback" not in refused.stderr
    assert "0 withdrawn, 5 unchanged" in refused.stdout
    again = hub(topics, "adapter", "run", "--profile", "police", "--accept-withdrawals", str(half))
    assert again.returncode == 0, again.stderr
    assert "5 rows read; 0 new, 0 corrected, 5 withdrawn, 5 unchanged" in again.stdout
    resent = hub(topics, "adapter", "run", "--profile", "police", str(half))
    assert "identical to feb.csv" in resent.stdout
    assert "0 new, 0 corrected, 0 withdrawn, 5 unchanged" in resent.stdout
