"""Every `hub` command explains itself: `--help` and `-h` on each, help text on every
command and option, `--version`; a bad setting is one line and exit status 2, whatever
the command."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import click
from click.testing import CliRunner

from hub.cli.main import main


def commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from commands(sub, (*path, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def test_every_command_and_option_has_help() -> None:
    runner = CliRunner()
    paths = list(commands(main))
    assert len(paths) > 30  # the whole tree, not one level
    undocumented = []
    for path in paths:
        command = command_at(path)
        if not command.help:
            undocumented.append(" ".join(path))
        for param in command.params:
            if isinstance(param, click.Option) and not param.help and param.name != "version":
                undocumented.append(f"{' '.join(path)} {param.opts[0]}")
        for flag in ("--help", "-h"):
            result = runner.invoke(main, [*path, flag])
            assert result.exit_code == 0, (path, flag, result.output)
            assert result.output.startswith("Usage: "), (path, flag)
    assert undocumented == []


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("hub, version ")


def test_a_bad_setting_is_one_line_and_exit_status_2() -> None:
    env = {**os.environ, "HUB_BROKER_PORT": "abc"}
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "broker", "status"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: HUB_BROKER_PORT (given 'abc'): "), result.stderr
