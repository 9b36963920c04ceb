"""The publisher's changelog reader: batches folded into the index, how far the workers
have read, progress on a long read, and the batch format."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from hub.settings import HubSettings
from hub.taxonomy import Taxonomy
from streams.publish.publisher import VersionLog
from streams.records import RecordVersion, decode_batch, encode_batch


def version(key: str, number: int) -> RecordVersion:
    return RecordVersion(
        key, number, True, "camhs", "CAMHS", "REFERRAL", "p1", "NHS_NUMBER", "2026-10-02",
        "11-13", "FEMALE", "E01", None, (), "YES", (), "VICTIM", "UNKNOWN",
    )  # fmt: skip


class _Reader:
    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages

    def read_to_end(self) -> Iterator[Any]:
        yield from self.messages

    def close(self) -> None:
        pass


def log_of(messages: list[Any]) -> VersionLog:
    """A VersionLog reading `messages` instead of a topic."""
    return VersionLog(HubSettings(), Taxonomy(), reader=_Reader(messages))


def message(partition: int, versions: list[RecordVersion], offset: int) -> Any:
    value = encode_batch(versions, {"cases.camhs": offset})
    return SimpleNamespace(partition=partition, value=value)


def test_batches_are_folded_and_the_read_offsets_kept(caplog: pytest.LogCaptureFixture) -> None:
    log = log_of(
        [
            message(0, [version("r1", 1), version("r2", 1)], 4),
            SimpleNamespace(partition=0, value=None),  # a tombstone: skipped
            message(0, [version("r1", 2)], 9),
            message(1, [version("r1", 1)], 3),  # an older version read later: no change
        ]
    )
    with caplog.at_level(logging.INFO, logger="streams.publish.publisher"):
        assert log.catch_up() == 3
    assert {k: v.version for k, v in log.records.items()} == {"r1": 2, "r2": 1}
    assert log.read == {("cases.camhs", 0): 9, ("cases.camhs", 1): 3}
    assert not caplog.records  # a short read says nothing


def test_a_long_read_says_how_far_it_is(caplog: pytest.LogCaptureFixture) -> None:
    log = log_of([message(0, [version(f"r{i}", 1)], i) for i in range(3)])
    with caplog.at_level(logging.INFO, logger="streams.publish.publisher"):
        log.catch_up(progress_every=0.0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == (
        "reading the record-versions changelog: 1 batches, 1 record versions, 1 records so far"
    )
    assert lines[-1].startswith("read 3 changelog batches (3 record versions, 3 records now) in ")


def test_a_batch_reads_back_as_written_and_as_older_workers_wrote_it() -> None:
    held = version("r1", 3)._replace(codes=("GROOMING",), previous=("p0",))
    data = encode_batch([held, version("r2", 1)], {"cases.camhs": 7})
    assert json.loads(data) == {
        "versions": [held.to_json(), version("r2", 1).to_json()],
        "read": {"cases.camhs": 7},
    }
    assert decode_batch(data) == ([held, version("r2", 1)], {"cases.camhs": 7})
    # Written by a worker of before `previous`: 18 fields, with the json module.
    older = json.dumps({"versions": [held.to_json()[:18]], "read": {}}).encode()
    assert decode_batch(older) == ([held._replace(previous=())], {})


def test_a_batch_with_a_wrong_field_is_refused() -> None:
    data = json.dumps({"versions": [["r1", "three", *version("r1", 1).to_json()[2:]]], "read": {}})
    with pytest.raises(msgspec.ValidationError, match=r"versions\[0\]\[1\]"):
        decode_batch(data.encode())
