"""Record versions built by hand for unit tests of the worker's state and changelog."""

from __future__ import annotations

import random
from collections.abc import Sequence

from streams.records import RecordVersion
from streams.state import PartitionState


def version(
    key: str,
    v: int = 1,
    *,
    live: bool = True,
    agency: str = "camhs",
    subject: str | None = "s1",
    codes: tuple[str, ...] = ("GROOMING",),
) -> RecordVersion:
    return RecordVersion(
        record_key=key,
        version=v,
        live=live,
        agency=agency,
        agency_type="CAMHS",
        event_type="REFERRAL" if live else "WITHDRAWN",
        subject=subject,
        basis="NHS_NUMBER" if subject else "NONE",
        occurred_on="2026-10-01",
        age_band="11-13",
        sex="FEMALE",
        area="E1",
        threshold=2,
        vulnerabilities=(),
        online="YES",
        codes=codes,
        role="VICTIM",
        outcome="UNKNOWN",
    )


def applied_once(versions: Sequence[RecordVersion]) -> PartitionState:
    """A partition's state with each of `versions` applied once, in order."""
    state = PartitionState()
    for v in versions:
        state.apply(v)
    return state


def twice_shuffled(versions: Sequence[RecordVersion], rnd: random.Random) -> list[RecordVersion]:
    """`versions` twice over, in `rnd`'s order: what a changelog read again may hold."""
    shuffled = [*versions, *versions]
    rnd.shuffle(shuffled)
    return shuffled
