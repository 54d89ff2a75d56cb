"""The `secretwatch` command line: the command tree. Each command lives in the module for
its part of the work and only parses options and calls the library."""

from __future__ import annotations

import typer

from pipeline.cli import alerts, archive, detection, ingest, query, report, serve
from pipeline.cli.render import print_alerts, print_summary

__all__ = ["app", "print_alerts", "print_summary"]

app = typer.Typer(
    help=(
        "secretwatch: audit and anomaly detection for access to secrets.\n\n"
        "Reads audit logs of HashiCorp Vault/OpenBao, AWS CloudTrail (Secrets Manager, SSM, "
        "KMS), Google Secret Manager, Azure Key Vault and Kubernetes, normalizes every access "
        "into one record, and keeps it in a store (embedded DuckDB by default)."
    ),
    no_args_is_help=True,
    add_completion=False,
)
app.command("ingest")(ingest.ingest)
app.command("ship")(ingest.ship)
app.command("run")(ingest.run)
app.command("serve")(serve.serve)
app.command("replay")(detection.replay)
app.command("train")(detection.train)
app.command("detect")(detection.detect)
app.command("events")(query.events)
app.command("stats")(query.stats)
app.command("report")(report.report)
app.command("dead-letters")(query.dead_letters)
app.command("deliver")(alerts.deliver)

alerts_app = typer.Typer(
    help="Stored alerts and their delivery to each sink; resolve them, re-drive dead letters.",
    no_args_is_help=False,
)
alerts_app.callback(invoke_without_command=True)(alerts.alerts_main)
alerts_app.command("list")(alerts.alerts_list)
alerts_app.command("show")(alerts.alerts_show)
alerts_app.command("resolve")(alerts.alerts_resolve)
alerts_app.command("redrive")(alerts.alerts_redrive)
app.add_typer(alerts_app, name="alerts")

archive_app = typer.Typer(help="The signed evidence archive: archive, verify, keygen, prune.")
archive_app.callback(invoke_without_command=True)(archive.archive_main)
archive_app.command("verify")(archive.verify)
archive_app.command("keygen")(archive.keygen)
archive_app.command("prune")(archive.prune)
app.add_typer(archive_app, name="archive")


def main() -> None:  # pragma: no cover - console-script entry
    app()
