"""The `hub` command. Settings are built here, once, and passed down; the agreement
beside them, and logging configured here for every command (``hub.logs``)."""

from __future__ import annotations

import sys

import click
from pydantic import ValidationError

from hub.cli import agency, deploy, operate, stream
from hub.cli.common import AGREEMENT, AgreementHolder
from hub.logs import configure_logging
from hub.settings import HubSettings, unknown_variables

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="online-risk-hub", prog_name="hub")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default=None,
    help="What every command logs to stderr, from DEBUG up; overrides HUB_LOG_LEVEL (INFO).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text, or json: one JSON object per line (time, level, logger, message,"
    " exception) for a container's log collector; overrides HUB_LOG_FORMAT (text).",
)
@click.pass_context
def main(ctx: click.Context, log_level: str | None, log_format: str | None) -> None:
    """The online-risk data-sharing hub. Settings come from HUB_* environment variables,
    the data-sharing agreement from the file HUB_AGREEMENT names; every command logs to
    stderr at HUB_LOG_LEVEL (INFO) in HUB_LOG_FORMAT (text). Exit status: 0 done, 1 an
    error the message explains, 2 a bad command line or setting (README: Exit codes)."""
    settings = _settings()
    chosen = {"log_level": log_level, "log_format": log_format}
    settings = settings.model_copy(update={k: v for k, v in chosen.items() if v is not None})
    ctx.obj = settings  # passed to the processes it starts through `to_env`
    configure_logging(settings.log_level, settings.log_format)
    _warn_unknown_variables()
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
        # One line per bad variable; the last says where the settings are described.
        lines[-1] += " (HUB_* settings: `hub --help`, docs/deploy.md)"
        click.secho("\n".join(lines), fg="red", err=True)
        sys.exit(2)


def _warn_unknown_variables() -> None:
    """One line on stderr naming the HUB_* variables no setting reads (a typo, most
    likely), each with the nearest setting's name; the command goes on."""
    unknown = unknown_variables()
    if not unknown:
        return
    named = ", ".join(
        name if near is None else f"{name} (did you mean {near}?)" for name, near in unknown.items()
    )
    click.secho(f"warning: no setting reads {named}; ignored", fg="yellow", err=True)


for _command in (*operate.COMMANDS, *deploy.COMMANDS, *agency.COMMANDS, *stream.COMMANDS):
    main.add_command(_command)
