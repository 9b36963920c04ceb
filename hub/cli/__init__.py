"""`hub`: the command line, the only place that wires adapters and the stream side together."""

from hub.cli.main import main

__all__ = ["main"]
