"""The `hub` command. Settings are built here, once, and passed down; the agreement
beside them, and logging configured here for every command (``hub.cli.common``)."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from hub.cli import agency, deploy, operate, stream
from hub.cli.common import AGREEMENT, AgreementHolder, configure_logging
from hub.settings import HubSettings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="online-risk-hub", prog_name="hub")
@click.pass_context
def main(ctx: click.Context) -> None:
    """The online-risk data-sharing hub. Settings come from HUB_* environment variables,
    the data-sharing agreement from the file HUB_AGREEMENT names; every command logs to
    stderr at HUB_LOG_LEVEL (INFO)."""
    ctx.obj = settings = _settings()
    configure_logging(settings.log_level)
    ctx.meta[AGREEMENT] = AgreementHolder(settings.agreement)


def _settings() -> HubSettings:
    """The HUB_* settings; a bad value is one line per variable, not a traceback."""
    try:
        return HubSettings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "HUB_" + "_".join(str(part) for part in error["loc"]).upper()
            given = error.get("input")
            shown = f" (given {given!r})" if isinstance(given, str | int | float) else ""
            lines.append(f"error: {name}{shown}: {error['msg']}")
        help_text = "see `hub --help` and docs/deploy.md for the HUB_* settings"
        click.secho("\n".join([*lines, help_text]), fg="red", err=True)
        sys.exit(2)


for _command in (*operate.COMMANDS, *deploy.COMMANDS, *agency.COMMANDS, *stream.COMMANDS):
    main.add_command(_command)
