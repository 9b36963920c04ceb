"""What an adapter run prints for the person running it: report lines and a progress bar.

Report lines go to stdout (or stderr for rejects and failures) and are flushed at
once; diagnostics go through `logging`. The progress bar of a long file is drawn
on stderr: redrawn in place on a terminal, otherwise only its label, once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

#: Characters of the bar itself, between the brackets.
BAR_WIDTH = 36
#: Shortest time between two redraws of the bar, in seconds.
REDRAW_EVERY = 0.1


def say(text: str, err: bool = False) -> None:
    """Print one line on stdout (stderr with `err`) and flush it."""
    print(text, file=sys.stderr if err else sys.stdout, flush=True)


@contextmanager
def progress(
    length: int, label: str, stream: TextIO | None = None
) -> Iterator[Callable[[int], None]]:
    """A progress bar of `length` steps on `stream` (stderr) while the block runs; yields
    the function that advances it by a number of steps."""
    out = sys.stderr if stream is None else stream
    total = max(length, 1)
    done = 0
    drawn = 0.0
    terminal = out.isatty()

    def draw() -> None:
        share = min(done / total, 1.0)
        filled = int(share * BAR_WIDTH)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        out.write(f"\r{label}  [{bar}]  {share:4.0%}")
        out.flush()

    def advance(steps: int) -> None:
        nonlocal done, drawn
        done += steps
        if terminal and time.monotonic() - drawn >= REDRAW_EVERY:
            drawn = time.monotonic()
            draw()

    if terminal:
        draw()
    else:
        print(label, file=out, flush=True)
    try:
        yield advance
    finally:
        if terminal:
            draw()
            out.write("\n")
            out.flush()
