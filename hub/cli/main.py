"""The `hub` command. Settings are built here, once, and passed down; the agreement
beside them, and logging configured here for every command (``hub.cli.common``)."""

from __future__ import annotations

import click

from hub.cli import agency, operate, stream
from hub.cli.common import AGREEMENT, AgreementHolder, configure_logging
from hub.settings import HubSettings


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """The online-risk data-sharing hub. Settings come from HUB_* environment variables,
    the data-sharing agreement from the file HUB_AGREEMENT names; every command logs to
    stderr at HUB_LOG_LEVEL (INFO)."""
    ctx.obj = settings = HubSettings()
    configure_logging(settings.log_level)
    ctx.meta[AGREEMENT] = AgreementHolder(settings.agreement)


for _command in (*operate.COMMANDS, *agency.COMMANDS, *stream.COMMANDS):
    main.add_command(_command)
