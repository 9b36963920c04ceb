"""The ingest loop's own machinery."""

from __future__ import annotations

import gc

import pytest

from adapters.pipeline import collecting_between_batches


def test_the_cycle_collector_is_held_back_in_the_block_and_restored_after_it() -> None:
    assert gc.isenabled()
    with collecting_between_batches() as collect:
        assert not gc.isenabled()
        collect()  # between batches: the young generations, and still held back
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collecting_between_batches():
        raise RuntimeError
    assert gc.isenabled()


def test_a_collector_turned_off_elsewhere_is_left_off() -> None:
    gc.disable()
    try:
        with collecting_between_batches() as collect:
            collect()
        assert not gc.isenabled()
    finally:
        gc.enable()
