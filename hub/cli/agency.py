"""The agency side: `hub adapter run / check / drain` and `hub synth`."""

from __future__ import annotations

from pathlib import Path

import click

from hub.cli.common import current_agreement, friendly, sigterm_as_ctrl_c
from hub.errors import ConfigError
from hub.settings import HubSettings


# --- adapter --------------------------------------------------------------------
@click.group()
def adapter() -> None:
    """Agency-side adapter: pseudonymise, minimise and publish an export."""


@adapter.command("run")
@click.option(
    "--profile",
    "profile_name",
    required=True,
    help="A shipped profile (e.g. camhs) or a profile YAML file.",
)
@click.option("--agency", default=None, help="The agency id; defaults to the profile's.")
@click.option(
    "--watch",
    "watch_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Process files dropped into this folder until SIGTERM or Ctrl-C.",
)
@click.option(
    "--sql",
    "sql_url",
    default=None,
    help="Read a database through SQLAlchemy, e.g. postgresql+psycopg://user@host/db.",
)
@click.option("--query", default=None, help="With --sql: the SELECT (or view) to read.")
@click.option(
    "--watermark",
    default=None,
    help="With --sql: a column that only grows (e.g. updated_at); runs resume there.",
)
@click.option(
    "--serve",
    "serve_port",
    type=int,
    default=None,
    help="Accept pushed JSON events on this port (POST /events, bearer tokens).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="With --serve.")
@click.option(
    "--tokens",
    "tokens_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='With --serve: a JSON file {"<bearer token>": "<provider>"}.',
)
@click.option(
    "--quarantine",
    type=click.Path(path_type=Path),
    default=Path("quarantine"),
    show_default=True,
    help="Where rejected-row reports stay (on this machine).",
)
@click.option(
    "--drain-timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to keep retrying Kafka before leaving events in the outbox.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0),
    default=None,
    help="Serve Prometheus /metrics on this port; 0: off. Default: HUB_ADAPTER_METRICS_PORT"
    " (9466) with --watch or --serve, off for a one-shot run.",
)
@click.option(
    "--accept-withdrawals",
    is_flag=True,
    help="Confirm that the records a full export no longer lists were deleted, when the"
    " adapter held their withdrawal back (too many, an empty or a damaged file).",
)
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
@friendly
def adapter_run(
    settings: HubSettings,
    profile_name: str,
    agency: str | None,
    watch_dir: Path | None,
    serve_port: int | None,
    host: str,
    sql_url: str | None,
    query: str | None,
    watermark: str | None,
    tokens_file: Path | None,
    quarantine: Path,
    drain_timeout: float,
    metrics_port: int | None,
    accept_withdrawals: bool,
    files: tuple[Path, ...],
) -> None:
    """Pseudonymise, minimise and publish FILES (in the order given), a watched folder
    or pushed events."""
    from adapters import runner

    if not files and watch_dir is None and serve_port is None and sql_url is None:
        raise ConfigError("give FILES, --watch DIR, --sql URL or --serve PORT")
    if sql_url is not None and (query is None or watermark is None):
        raise ConfigError("--sql needs --query and --watermark")
    if metrics_port is None:
        long_running = watch_dir is not None or serve_port is not None
        metrics_port = settings.adapter_metrics_port if long_running else 0
    with (
        runner.adapter_run(
            settings, profile_name, agency, quarantine=quarantine, agreement=current_agreement()
        ) as run,
        runner.metrics_served(run, metrics_port),
    ):
        if files:
            runner.run_files(run, files, drain_timeout, accept_withdrawals)
        if sql_url is not None and query is not None and watermark is not None:
            runner.run_query(run, sql_url, query, watermark, drain_timeout)
        if watch_dir is not None:
            click.echo(f"watching {watch_dir} (SIGTERM or Ctrl-C stops)")
            with sigterm_as_ctrl_c():
                runner.watch(run, watch_dir)
        if serve_port is not None:
            runner.serve(run, host, serve_port, tokens_file)


@adapter.command("check")
@click.option(
    "--profile",
    "profile_name",
    required=True,
    help="A shipped profile (e.g. camhs) or a profile YAML file.",
)
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.pass_obj
@friendly
def adapter_check(settings: HubSettings, profile_name: str, files: tuple[Path, ...]) -> None:
    """Dry run: report accepted rows and rejected rows by reason. Publishes nothing."""
    from adapters.runner import adapter_run as open_run
    from adapters.runner import check_file

    with open_run(settings, profile_name, None, dry_run=True, agreement=current_agreement()) as run:
        for path in files:
            summary = check_file(run, path)
            for reason, count in summary.reasons():
                click.echo(f"  {count:>6} rejected: {reason}")
            click.echo(summary.line())


@adapter.command("drain")
@click.option(
    "--timeout",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to keep retrying Kafka before leaving events in the outbox.",
)
@click.option("--follow", is_flag=True, help="Keep draining until SIGTERM or Ctrl-C.")
@click.option("--poll", type=float, default=2.0, show_default=True, help="With --follow.")
@click.option(
    "--agency",
    default="unknown",
    show_default=True,
    help="The agency id the metrics name (the `agency` label).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=0),
    default=None,
    help="With --follow: serve Prometheus /metrics on this port; 0: off."
    " Default: HUB_ADAPTER_METRICS_PORT (9466).",
)
@click.pass_obj
@friendly
def adapter_drain(
    settings: HubSettings,
    timeout: float,
    follow: bool,
    poll: float,
    agency: str,
    metrics_port: int | None,
) -> None:
    """Send what the outbox (HUB_OUTBOX) holds. With --follow, keep sending through any
    Kafka outage or disk error (retrying with backoff); it exits 1 only when the outbox is
    damaged, saying what to do."""
    from adapters.drain import drain

    drain(settings, timeout, follow, poll, agency, metrics_port)


@click.command()
@click.option("--agency", required=True, help="A shipped profile: the export takes its shape.")
@click.option(
    "--rows", type=click.IntRange(min=1), default=200, show_default=True, help="Rows to write."
)
@click.option(
    "--seed", type=int, default=1, show_default=True, help="The same seed, the same export."
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The export file.")
@friendly
def synth(agency: str, rows: int, seed: int, out: Path) -> None:
    """Write a synthetic export in AGENCY's own shape (invented people, realistic mess)."""
    from adapters.profile import load_profile
    from adapters.synth.cases import child_pool, synth_rows, write_csv
    from adapters.synth.exports import write_export

    pool = child_pool(max(50, rows // 2))
    if agency == "generic":
        write_csv(out, synth_rows(agency, rows, seed, pool))
    else:
        write_export(load_profile(agency), rows, seed, pool, out)
    click.echo(f"wrote {rows} rows for {agency} to {out}")


#: The commands `hub` gets from this module.
COMMANDS: tuple[click.Command, ...] = (
    adapter,
    synth,
)
