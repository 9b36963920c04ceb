from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from hub.errors import ConfigError
from hub.minimise import Minimiser, load_area_lookup, parse_age_bands


@pytest.mark.parametrize(
    ("born", "on", "band"),
    [
        (date(2013, 5, 2), date(2026, 5, 1), "11-13"),  # 12, the day before the birthday
        (date(2013, 5, 2), date(2026, 5, 2), "11-13"),  # 13 on the day
        (date(2012, 5, 2), date(2026, 5, 2), "14-15"),
        (date(2000, 1, 1), date(2026, 1, 1), "unknown"),  # 26: outside every band
        (None, date(2026, 1, 1), "unknown"),
    ],
)
def test_age_bands(born: date | None, on: date, band: str) -> None:
    assert Minimiser().age_band(born, on) == band


def test_configured_bands() -> None:
    bands = parse_age_bands("0-10, 11-17")
    assert Minimiser(bands).age_band(date(2014, 1, 1), date(2026, 1, 1)) == "11-17"
    for bad in ("0-4,4-8", "5-3", "a-b", "7"):
        with pytest.raises(ConfigError):
            parse_age_bands(bad)


def test_postcode_to_area_then_sector_then_unknown(tmp_path: Path) -> None:
    lookup = tmp_path / "areas.csv"
    lookup.write_text("postcode,area\nDY1 4RT,Dudley Central\n")
    minimiser = Minimiser(areas=load_area_lookup(lookup))
    assert minimiser.area("dy14rt") == "Dudley Central"
    assert minimiser.area("DY1 4RU") == "DY1 4"
    assert minimiser.area("B63 3AB") == "B63 3"
    assert minimiser.area("DY1") == "unknown"
    assert minimiser.area("not a postcode") == "unknown"


def test_a_bad_lookup_row_names_file_row_and_field(tmp_path: Path) -> None:
    lookup = tmp_path / "areas.csv"
    lookup.write_text("postcode,area\nDY1 4RT,Central\nNOPE,North\n")
    with pytest.raises(ConfigError, match=r"areas.csv, row 3, field 'postcode'"):
        load_area_lookup(lookup)
