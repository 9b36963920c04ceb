"""Files through the real adapter, and what the worker must count from them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from adapters.mapping import RowMapper
from adapters.pipeline import RunSummary
from adapters.profile import load_profile
from adapters.runner import adapter_run
from adapters.sources.delimited import CsvSource
from hub.errors import RecordError
from hub.models import CaseEvent, EventType
from hub.pseudonymise import Pseudonymiser
from hub.settings import HubSettings


def publish_file(
    settings: HubSettings, path: Path, agency: str, profile: str = "generic"
) -> RunSummary:
    """Run one file through the real adapter (outbox, then Kafka) as `agency`."""
    with adapter_run(settings, profile, agency, quarantine=path.parent / "quarantine") as run:
        summary = run.ingest_file(path)
        run.drain(timeout=60)
    return summary


@dataclass(frozen=True)
class GroundTruth:
    """What the worker must count, computed offline from the input files."""

    by_code: Counter[str]
    records: int  # live records, current version
    events: int  # distinct event ids (record versions)


def ground_truth(files: dict[str, Path], pseudonymiser: Pseudonymiser) -> GroundTruth:
    """Per record, its highest version counts unless that version withdraws it."""
    profile = load_profile("generic")
    current: dict[str, CaseEvent] = {}
    event_ids: set[str] = set()
    for agency, path in files.items():
        mapper = RowMapper(profile, pseudonymiser, str(path), agency=agency)
        for item in CsvSource(path, profile).records():
            if isinstance(item, RecordError):
                continue
            try:
                event = mapper.map(item.row, item.values)
            except RecordError:
                continue
            event_ids.add(event.event_id)
            held = current.get(event.record_key)
            if held is None or event.record_version > held.record_version:
                current[event.record_key] = event
    live = [e for e in current.values() if e.event_type is not EventType.WITHDRAWN]
    by_code: Counter[str] = Counter()
    for event in live:
        by_code.update(event.online_risks)
    return GroundTruth(by_code, len(live), len(event_ids))
