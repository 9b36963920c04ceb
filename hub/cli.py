"""The `hub` command. Settings are built here, once, and passed down."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import ParamSpec, TypeVar

import click

from hub.errors import ConfigError, HubError
from hub.settings import HubSettings

P = ParamSpec("P")
R = TypeVar("R")


def _friendly(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a HubError into a one-paragraph message and exit status 1."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except HubError as exc:
            click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(1)

    return wrapper


@click.group()
@click.pass_context
def main(ctx: click.Context) -> None:
    """The online-risk data-sharing hub. Settings come from HUB_* environment variables."""
    ctx.obj = HubSettings()


# --- broker -------------------------------------------------------------------
@main.group()
def broker() -> None:
    """The local single-node Kafka broker (development and tests only)."""


@broker.command("fetch")
@click.pass_obj
@_friendly
def broker_fetch(settings: HubSettings) -> None:
    """Fetch Kafka's jars from Maven Central into the cache (once)."""
    from hub.broker import ensure_artifacts

    artifacts = ensure_artifacts(settings)
    click.echo(f"Kafka {artifacts.version} ready in {artifacts.libs}")


@broker.command("start")
@click.pass_obj
@_friendly
def broker_start(settings: HubSettings) -> None:
    """Start the broker and wait until it answers; a no-op when it already runs."""
    from hub.broker import Broker

    b = Broker(settings)
    already = b.pid() is not None
    status = b.start()
    click.echo(("already " if already else "") + status.describe())


@broker.command("stop")
@click.pass_obj
@_friendly
def broker_stop(settings: HubSettings) -> None:
    """Stop the broker cleanly and free its ports."""
    from hub.broker import Broker

    stopped = Broker(settings).stop()
    click.echo("broker stopped" if stopped else "broker was not running")


@broker.command("status")
@click.pass_obj
@_friendly
def broker_status(settings: HubSettings) -> None:
    """Say whether the broker runs; exit status 0 when it does, 3 when not."""
    from hub.broker import Broker

    status = Broker(settings).status()
    click.echo(status.describe())
    if not status.running:
        sys.exit(3)


# --- topics -------------------------------------------------------------------
@main.group()
def topics() -> None:
    """The hub's Kafka topics."""


@topics.command("apply")
@click.pass_obj
@_friendly
def topics_apply(settings: HubSettings) -> None:
    """Create missing topics and reset declared configs; safe to run again."""
    from hub.topics import apply_topics, declared_topics

    report = apply_topics(settings, declared_topics(settings))
    for name in report.created:
        click.echo(f"created {name}")
    for name in report.updated:
        click.echo(f"updated {name}")
    click.echo(f"topics: {report.summary()}")


# --- keys -----------------------------------------------------------------------
@main.group()
def keys() -> None:
    """Partnership pseudonymisation keys (held by agencies, never by the hub)."""


@keys.command("new")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True)
@click.option("--key-id", default=None, help="Defaults to a random k-xxxxxxxx.")
@_friendly
def keys_new(out: Path, key_id: str | None) -> None:
    """Write a new random key file, readable by its owner only (0600)."""
    from hub.pseudonymise import new_key_file

    if out.exists():
        raise ConfigError(f"{out} exists; a key file is never overwritten")
    key = new_key_file(out, key_id)
    click.echo(f"wrote key {key.key_id} to {out}; set HUB_KEY_FILE={out}")


# --- adapter --------------------------------------------------------------------
@main.group()
def adapter() -> None:
    """Agency-side adapter: pseudonymise, minimise and publish an export."""


@adapter.command("run")
@click.option("--agency", required=True, help="The agency id, e.g. camhs.")
@click.option(
    "--quarantine",
    type=click.Path(path_type=Path),
    default=Path("quarantine"),
    show_default=True,
    help="Where rejected-row reports stay (on this machine).",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.pass_obj
@_friendly
def adapter_run(
    settings: HubSettings, agency: str, quarantine: Path, files: tuple[Path, ...]
) -> None:
    """Publish FILES (generic CSV layout) as AGENCY's case events."""
    from adapters.pipeline import CsvAdapter
    from adapters.publisher import KafkaPublisher
    from hub.pseudonymise import Pseudonymiser, load_key

    pseudonymiser = Pseudonymiser(load_key(settings))
    publisher = KafkaPublisher(settings, client_id=f"hub-adapter-{agency}")
    try:
        runner = CsvAdapter(
            agency, settings.case_topic(agency), pseudonymiser, publisher, quarantine
        )
        for path in files:
            summary = runner.run(path)
            for error in summary.rejected[:20]:
                click.echo(f"rejected: {error}", err=True)
            click.echo(summary.line())
    finally:
        publisher.close()


@main.command()
@click.option("--agency", required=True)
@click.option("--rows", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True)
def synth(agency: str, rows: int, seed: int, out: Path) -> None:
    """Write a synthetic export for AGENCY (invented people, with realistic faults)."""
    from adapters.synth import child_pool, synth_rows, write_csv

    write_csv(out, synth_rows(agency, rows, seed, child_pool(max(50, rows // 2))))
    click.echo(f"wrote {rows} rows for {agency} to {out}")


# --- streams --------------------------------------------------------------------
@main.group()
def streams() -> None:
    """Stream processing."""


@streams.command("worker")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_obj
@_friendly
def streams_worker(settings: HubSettings, loglevel: str) -> None:
    """Run the Faust worker: dedup, count, serve /metrics (HUB_METRICS_PORT)."""
    from streams.worker import run_worker

    run_worker(settings, loglevel)


@main.command()
@click.pass_obj
@_friendly
def demo(settings: HubSettings) -> None:
    """Broker, topics, worker and simulated agencies, until Ctrl-C."""
    from hub.demo import run_demo

    run_demo(settings)


if __name__ == "__main__":
    main()
