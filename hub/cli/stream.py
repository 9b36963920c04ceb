"""The hub side: the stream worker, the publisher, forced releases, reading the trends."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import click

from hub.cli.common import current_agreement, friendly, sigterm_as_ctrl_c
from hub.errors import require_extra
from hub.settings import HubSettings

#: `hub subscribe` and `hub audit` print rows the same two ways.
_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default="csv",
    show_default=True,
    help="CSV with a header, or one JSON object per line.",
)


# --- streams --------------------------------------------------------------------
@click.group()
def streams() -> None:
    """Stream processing."""


@streams.command("worker")
@click.pass_obj
@friendly
def streams_worker(settings: HubSettings) -> None:
    """Run the Faust worker: dedup, count, serve /metrics (HUB_METRICS_PORT), until SIGTERM
    or Ctrl-C. It logs as every command does (`hub --log-level`, HUB_LOG_LEVEL)."""
    from streams.worker import run_worker

    run_worker(settings, current_agreement())


@streams.command("publisher")
@click.pass_obj
@friendly
def streams_publisher(settings: HubSettings) -> None:
    """Publish closed periods on the agreement's timetable; serve the published trends as
    metrics (HUB_PUBLISHER_METRICS_PORT), until SIGTERM or Ctrl-C."""
    from streams.publish.run import run_publisher

    agreement = current_agreement()
    with sigterm_as_ctrl_c():  # also while it waits for the worker's changelog
        try:
            run_publisher(settings, agreement)
        except KeyboardInterrupt:
            pass
    click.echo("publisher stopped", err=True)


@streams.command("replay-deferred")
@click.option(
    "--timeout", type=float, default=120.0, show_default=True, help="Seconds to read for."
)
@click.pass_obj
@friendly
def streams_replay_deferred(settings: HubSettings, timeout: float) -> None:
    """Send deferred events (written with a schema newer than the workers had) back to their
    topics, once the hub ships that schema; those it still cannot read stay deferred."""
    from streams.deferred import replay_deferred

    click.echo(replay_deferred(settings, timeout).summary())


@click.command()
@click.option("--now", "now", is_flag=True, required=True, help="Release now, off the timetable.")
@click.option("--period", required=True, help="A month (2026-10) or a quarter (2026Q3).")
@click.option(
    "--publication",
    default=None,
    help="The agreement's publication; by default the one that closes this kind of period.",
)
@click.option(
    "--wait",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait for the stream workers to catch up.",
)
@click.option(
    "--reason",
    required=True,
    help="Why it cannot wait for the timetable; kept on the audit trail (no names, dates"
    " or numbers of a child or case).",
)
@click.pass_obj
@friendly
def publish(
    settings: HubSettings,
    now: bool,
    period: str,
    publication: str | None,
    wait: float,
    reason: str,
) -> None:
    """Force the release of one ended PERIOD now, for --reason (audited); a revision if it
    changed."""
    from hub.audit import checked_reason
    from hub.periods import period_label
    from streams.publish.publisher import Publisher
    from streams.publish.requests import ask

    agreement = current_agreement()
    reason = checked_reason(reason)
    # The running publisher service already holds the changelog: ask it (one period's
    # cells); without one, read and index the changelog here.
    release = ask(settings, period, publication, wait, reason)
    if release is not None:
        click.echo("asked the running publisher service, which released it", err=True)
    else:
        publisher = Publisher(settings, agreement, worker_timeout=wait, role="forced")
        try:
            release = publisher.publish_now(period, publication, reason=reason)
        finally:
            publisher.close()
    kind = agreement.schedule(release.publication).closes
    label = period_label(kind, release.period)
    if release.changed:
        click.echo(
            f"released {release.publication} {label} revision {release.revision}:"
            f" {release.cells} cells, {release.suppressed} suppressed"
            + (
                f" ({release.linked} of them for what the trends topic already holds)"
                if release.linked
                else ""
            )
            + f"; audit entry {release.audit_id}"
        )
        if release.withheld:
            shown = ", ".join(f"{m} by {d}" for m, d in release.withheld)
            click.echo(
                f"withheld whole: {shown}; published, they would let a reader of the trends"
                " topic narrow a hidden cell into the suppressed band (earlier revisions'"
                " cells stay on the topic)"
            )
    elif release.staged_id:
        click.echo(
            f"staged {release.publication} {label} revision {release.revision} for approval:"
            f" {release.cells} cells, {release.suppressed} suppressed; nothing is published"
            f" until one of the agreement's approvers runs `hub release approve"
            f" {release.staged_id}`"
        )
    else:
        click.echo(
            f"{release.publication} {label} unchanged since revision {release.revision};"
            " nothing sent"
        )


@click.command()
@click.argument("topic", required=False)
@click.option("--from", "since", default=None, help="First period: 2026-01 or 2026Q1.")
@_FORMAT
@click.option(
    "--follow", is_flag=True, help="Keep printing new publications until SIGTERM or Ctrl-C."
)
@click.pass_obj
@friendly
def subscribe(
    settings: HubSettings, topic: str | None, since: str | None, fmt: str, follow: bool
) -> None:
    """Print the published trend cells (each period at its latest revision; TOPIC
    defaults to partnership.trends.v1). Suppressed cells have an empty count and suppressed=True."""
    from hub.subscribe import subscribe as run_subscribe

    with sigterm_as_ctrl_c():
        printed = run_subscribe(settings, topic, since, fmt, follow)
    click.echo(f"{printed} published cells", err=True)


@click.command()
@click.option("--period", required=True, help="A quarter (2026Q3) or a month (2026-09).")
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="HTML file."
)
@click.pass_obj
@friendly
def report(settings: HubSettings, period: str, out: Path) -> None:
    """Write the board pack for a published period: one self-contained HTML file."""
    require_extra("report", "`hub report`")
    from hub.report import write_pack
    from hub.subscribe import published_rows

    agreement = current_agreement()
    written = write_pack(published_rows(settings), agreement, period, out)
    click.echo(
        f"wrote {written.path}: {written.publication} {written.period} revision"
        f" {written.revision}, {written.cells} cells, {written.suppressed} suppressed"
    )


@click.command()
@click.option(
    "--from",
    "since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M"]),
    default=None,
    help="First day (UTC) of the entries shown; default: all.",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["RELEASE", "ACL_APPLY", "KEY_ROTATION", "AGREEMENT_CHANGE", "SUBMISSION"]),
    help="Only entries of this kind (repeatable).",
)
@_FORMAT
@click.pass_obj
@friendly
def audit(settings: HubSettings, since: datetime | None, kinds: tuple[str, ...], fmt: str) -> None:
    """Print the audit trail: releases, ACL applies, key rotations, agreement changes and
    agency submissions, oldest first (the operator and the agreement's audit readers)."""
    from hub.audit import read_entries, to_csv, to_jsonl

    start = None if since is None else since.replace(tzinfo=UTC)
    records = read_entries(settings, start, kinds)
    click.echo((to_jsonl if fmt == "jsonl" else to_csv)(records), nl=False)
    click.echo(f"{len(records)} audit entries", err=True)


# --- two-person release ---------------------------------------------------------------
@click.group()
def release() -> None:
    """Staged releases of two-person publications: list, approve, reject."""


@release.command("list")
@click.option("--cells", is_flag=True, help="Show every cell of each staged release.")
@click.pass_obj
@friendly
def release_list(settings: HubSettings, cells: bool) -> None:
    """Show the releases waiting for approval, with their suppression summary."""
    from streams.publish.approval import Approvals

    approvals = Approvals(settings, current_agreement())
    try:
        waiting = approvals.waiting()
    finally:
        approvals.close()
    for staged in waiting:
        kinds = Counter(c.suppression.value for c in staged.cells if c.suppressed)
        forced = f", forced: {staged.reason}" if staged.forced else ""
        click.echo(
            f"{staged.id}  {staged.publication} {staged.period[0]}..{staged.period[1]} revision"
            f" {staged.revision}  staged by {staged.staged_by} ({staged.staged_account}) at"
            f" {staged.staged_at:%Y-%m-%d %H:%M} UTC{forced}"
        )
        click.echo(
            f"  {len(staged.cells)} cells: {len(staged.cells) - staged.suppressed} with a count,"
            f" {staged.suppressed} suppressed ({kinds['PRIMARY']} primary, {kinds['SECONDARY']}"
            f" secondary, {kinds['NONE']} for what the topic holds)"
            + (f"; withheld whole: {', '.join(f'{m} by {d}' for m, d in staged.withheld)}"
               if staged.withheld else "")
        )  # fmt: skip
        if cells:
            for c in staged.cells:
                shown = "suppressed" if c.suppressed else str(c.count)
                click.echo(f"    {c.measure} by {c.dimension} = {c.value}: {shown}")
    click.echo(f"{len(waiting)} staged releases waiting for approval", err=True)


@release.command("approve")
@click.argument("id")
@click.pass_obj
@friendly
def release_approve(settings: HubSettings, id: str) -> None:
    """Publish the staged release ID (as one of the agreement's approvers, never the
    principal that staged it)."""
    from streams.publish.approval import Approvals

    approvals = Approvals(settings, current_agreement())
    try:
        done = approvals.approve(id)
    finally:
        approvals.close()
    click.echo(
        f"approved and published {done.publication} {done.period[0]}..{done.period[1]}"
        f" revision {done.revision}: {done.cells} cells, {done.suppressed} suppressed;"
        f" audit entry {done.audit_id}"
    )


@release.command("reject")
@click.argument("id")
@click.option("--reason", required=True, help="Why; kept on the audit trail (no identifiers).")
@click.pass_obj
@friendly
def release_reject(settings: HubSettings, id: str, reason: str) -> None:
    """Discard the staged release ID: it is never published."""
    from streams.publish.approval import Approvals

    approvals = Approvals(settings, current_agreement())
    try:
        entry = approvals.reject(id, reason)
    finally:
        approvals.close()
    click.echo(f"rejected {id}; audit entry {entry}")


#: The commands `hub` gets from this module.
COMMANDS: tuple[click.Command, ...] = (
    streams,
    publish,
    subscribe,
    report,
    audit,
    release,
)
