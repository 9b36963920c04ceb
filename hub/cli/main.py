"""The `hub` command. Settings are built here, once, and passed down; the agreement
beside them (``hub.cli.common``)."""

from __future__ import annotations

import click

from hub.cli import agency, operate, stream
from hub.cli.common import AGREEMENT, AgreementHolder
from hub.settings import HubSettings


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """The online-risk data-sharing hub. Settings come from HUB_* environment variables,
    the data-sharing agreement from the file HUB_AGREEMENT names."""
    ctx.obj = settings = HubSettings()
    ctx.meta[AGREEMENT] = AgreementHolder(settings.agreement)


for _command in (*operate.COMMANDS, *agency.COMMANDS, *stream.COMMANDS):
    main.add_command(_command)
