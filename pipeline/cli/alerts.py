"""Commands about alerts after detection: `deliver` them to the sinks, and the `alerts`
group that lists, resolves and re-drives them."""

from __future__ import annotations

import logging
import sys
from contextlib import closing
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from pipeline.cli import consoles
from pipeline.cli.options import ConfigOpt, ServerOpt, StoreOpt
from pipeline.cli.session import exit_on_error, load_config, reading, session
from pipeline.errors import ConfigError
from pipeline.store import open_store
from pipeline.terminal import inert, json_line, log_to_stderr

if TYPE_CHECKING:
    from pipeline.sinks.delivery import Deliverer


def deliver(
    once: Annotated[
        bool,
        typer.Option(
            "--once", help="Send what is in the outbox, then exit (status 1 if some remain)."
        ),
    ] = False,
    wait: Annotated[
        float, typer.Option(help="With --once: wait up to this many seconds for retries.")
    ] = 60.0,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Send the store's alerts to the sinks in the config (`sinks:`): each alert once per
    sink, again when it grows or is resolved, with retries, back-off and dead letters.
    Runs until SIGTERM or Ctrl-C (which finish the requests in flight) unless --once."""
    from pipeline.sinks.delivery import Deliverer

    log_to_stderr(logging.INFO)  # sink errors quote receivers' answers: printed inert
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with exit_on_error():
        cfg = load_config(config)
        if not any(s.enabled for s in cfg.sinks):
            raise ConfigError(
                "no sink is configured (or all are disabled): add one under "
                "`sinks:` in the config (README: Delivering alerts to your SIEM)"
            )
        with closing(open_store(cfg, store_path, read_only=False)) as store:
            deliverer = Deliverer(store, cfg.sinks, cfg.delivery)
            _send(deliverer, [s.name for s in cfg.sinks], once, wait)
            names = [s.name for s in cfg.sinks if s.enabled]
            left = store.delivery_state(names, state="pending") if names else None
    counts = deliverer.tally.counts
    pending = 0 if left is None else len(left)
    consoles.out.print(
        f"delivered {counts['delivered']}, suppressed {counts['suppressed']}, dead-lettered "
        f"{counts['dead']}; {pending} deliveries still pending"
        + (" (see `secretwatch alerts --state pending`)" if pending else ""),
        highlight=False,
    )
    if once and (pending or counts["dead"]):
        raise typer.Exit(1)


def _send(deliverer: Deliverer, sinks: list[str], once: bool, wait: float) -> None:
    """Run the deliverer until the outbox is drained (--once) or SIGTERM / Ctrl-C, which
    let the requests in flight finish; then close it."""
    import signal
    import threading
    import time

    stop = threading.Event()
    deliverer.start()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        if once:
            deliverer.drain(time.time() + wait, stop)
        else:
            consoles.err.print(f"delivering to {', '.join(sinks)}; Ctrl-C stops", highlight=False)
            deliverer.run(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        deliverer.close()


StateOpt = Annotated[
    str | None,
    typer.Option(
        "--state", help="Only deliveries in this state: pending, delivered, dead, suppressed."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")]
LimitOpt = Annotated[int, typer.Option(help="At most this many alerts, newest first (0: all).")]


def alerts_main(
    ctx: typer.Context,
    state: StateOpt = None,
    as_json: JsonOpt = False,
    limit: LimitOpt = 50,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
    server: ServerOpt = None,
) -> None:
    """Without a subcommand: `alerts list`."""
    if ctx.invoked_subcommand is None:
        alerts_list(state, as_json, limit, config, store_path, server)


def alerts_list(
    state: StateOpt = None,
    as_json: JsonOpt = False,
    limit: LimitOpt = 50,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
    server: ServerOpt = None,
) -> None:
    """Alerts, newest first, with their verdict and their state at every configured sink."""
    from pipeline.sinks.status import headline, summarize
    from pipeline.store.base import DELIVERY_STATES

    if state is not None and state not in DELIVERY_STATES:
        raise typer.BadParameter(
            f"{state!r}; choose one of {', '.join(DELIVERY_STATES)}", param_hint="--state"
        )
    with session(config, store_path, read_only=True, server=server) as (cfg, store):
        names = [s.name for s in cfg.sinks if s.enabled]
        frame = store.delivery_state(names, state, limit=limit or None)
    alerts = summarize(frame)
    if not names:
        consoles.err.print(
            "no sink is configured: alerts are stored but delivered nowhere (add one "
            "under `sinks:`)"
        )
    if as_json:
        for alert in alerts:
            sys.stdout.buffer.write(json_line(alert))
        return
    table = Table(title=f"{len(alerts)} alerts" + (f" with {state} deliveries" if state else ""))
    for name in (
        "time (UTC)",
        "severity",
        "identity",
        "detectors",
        "id",
        "rev",
        "verdict",
        "delivery",
    ):
        table.add_column(name, overflow="fold")
    for a in alerts:
        verdict = a["resolution"] or (
            "folded into " + a["folded_into"] if a["folded_into"] else "open"
        )
        table.add_row(  # identities from the logs, errors from the receivers: inert
            str(a["timestamp"])[:16].replace("T", " "),
            inert(a["severity"]),
            inert(a["identity"]),
            inert(", ".join(a["detectors"])),
            inert(a["id"]),
            f"{a['revision']}" + (f" (+{a['repeats']} repeats)" if a["repeats"] else ""),
            inert(verdict),
            inert(headline(a)),
        )
    consoles.out.print(table)
    dead = [d for a in alerts for d in a["deliveries"] if d["state"] == "dead"]
    for d in dead[:3]:
        consoles.out.print(inert(f"  dead at {d['sink']}: {d['last_error']}"))
    if dead:
        consoles.out.print("  re-drive with: secretwatch alerts redrive [--sink NAME] [--id ID]")


def alerts_resolve(
    alert_id: Annotated[str, typer.Argument(help="The alert id (swa-...).")],
    true_positive: Annotated[
        bool, typer.Option("--true-positive", help="A real incident.")
    ] = False,
    false_positive: Annotated[
        bool,
        typer.Option("--false-positive", help="Benign: retraining learns its events as normal."),
    ] = False,
    reopen: Annotated[bool, typer.Option("--reopen", help="Clear the verdict.")] = False,
    note: Annotated[str | None, typer.Option(help="Why, for the report.")] = None,
    by: Annotated[str | None, typer.Option(help="Who decided (default: $USER).")] = None,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
    server: ServerOpt = None,
) -> None:
    """Record an analyst's verdict on an alert; the sinks receive it as a new revision."""
    import getpass

    if true_positive + false_positive + reopen != 1:
        raise typer.BadParameter("give exactly one of --true-positive, --false-positive, --reopen")
    resolution = "true_positive" if true_positive else "false_positive" if false_positive else None
    who = by or getpass.getuser()
    with reading(config, store_path, read_only=False, server=server) as store:
        store.resolve_alert(alert_id, resolution, who, note, datetime.now(UTC))
    done = f"{alert_id}: {resolution or 'reopened'} (by {who})"
    consoles.out.print(
        inert(f"{done}; sinks receive the new revision at the next `secretwatch deliver`")
    )


def alerts_show(
    alert_id: Annotated[str, typer.Argument(help="The alert id (swa-...).")],
    as_json: Annotated[
        bool, typer.Option("--json", help="The alert, verdict and deliveries as one JSON line.")
    ] = False,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
    server: ServerOpt = None,
) -> None:
    """One alert in full: explanation, evidence, verdict and its state at every sink."""
    from pipeline.api.documents import find_alert
    from pipeline.errors import StoreError

    with session(config, store_path, read_only=True, server=server) as (cfg, store):
        alert = find_alert(store, alert_id, [s.name for s in cfg.sinks if s.enabled])
        if alert is None:
            raise StoreError(f"no alert {alert_id!r}; `secretwatch alerts` lists them")
    if as_json:
        sys.stdout.buffer.write(json_line(alert))
        return
    body, out = alert["body"], consoles.out
    verdict = alert["resolution"] or (
        "folded into " + alert["folded_into"] if alert["folded_into"] else "open"
    )
    lines = [  # every value from the logs or an analyst, printed inert
        f"{alert['id']}  {alert['severity'].upper()}  {alert['identity']}  "
        f"{str(alert['ts'])[:19].replace('T', ' ')}Z",
        f"detectors: {alert['detectors'].replace(',', ', ')}; score {alert['score']:g}; "
        f"{alert['evidence_count']} events; baselines version {alert['baseline_version']}",
        f"window: {alert['window_start']} to {alert['window_end']}",
        f"  {alert['explanation']}",
        "evidence: " + ", ".join(str(e) for e in body.get("evidence", [])),
        f"verdict: {verdict}"
        + (f" by {alert['resolved_by']} at {alert['resolved_at']}" if alert["resolution"] else "")
        + (f": {alert['note']}" if alert["note"] else ""),
        f"revision {alert['revision']}"
        + (f" (+{alert['repeats']} repeats)" if alert["repeats"] else ""),
    ]
    lines += [
        f"  {d['sink']}: {d['state']}, delivered revision {d['delivered_revision']}, "
        f"{d['attempts']} attempts"
        + (f", last error: {d['last_error']}" if d["last_error"] else "")
        for d in alert["deliveries"]
    ]
    for line in lines:
        out.print(inert(line))


def alerts_redrive(
    sink: Annotated[str | None, typer.Option(help="Only this sink's dead letters.")] = None,
    alert_id: Annotated[str | None, typer.Option("--id", help="Only this alert.")] = None,
    config: ConfigOpt = None,
    store_path: StoreOpt = None,
) -> None:
    """Make dead-lettered deliveries pending again (after fixing what refused them)."""
    with exit_on_error():
        cfg = load_config(config)
        names = [s.name for s in cfg.sinks]
        if sink is not None and sink not in names:
            raise typer.BadParameter(
                f"{sink!r}; configured sinks: {', '.join(names) or 'none'}", param_hint="--sink"
            )
        with closing(open_store(cfg, store_path, read_only=False)) as store:
            moved = store.redrive(sink, alert_id)
    consoles.out.print(
        f"{moved} dead deliver{'y is' if moved == 1 else 'ies are'} pending again; "
        "`secretwatch deliver` sends them",
        highlight=False,
    )
