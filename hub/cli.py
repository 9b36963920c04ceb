"""The `hub` command. Settings are built here, once, and passed down."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import click

from hub.errors import HubError
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


if __name__ == "__main__":
    main()
