"""``rhip inbox …``: look at the inbox and re-process what failed."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="The inbox of inbound messages (收件箱).", no_args_is_help=True)
console = Console()


def _engine():
    from rhip.kernel.settings import Settings
    from rhip.store import make_engine, upgrade

    engine = make_engine(Settings().effective_database_url)
    upgrade(engine)
    return engine


@app.command("list")
def list_(
    status: str = typer.Option("failed", help="received|processed|failed|duplicate ('' for all)"),
    limit: int = typer.Option(50, help="how many, newest first"),
) -> None:
    """List inbox messages."""
    from rhip.exchange.service import list_inbox

    rows = list_inbox(_engine(), status=status or None, limit=limit)
    table = Table("id", "received (UTC)", "sender", "type", "control id", "status", "error")
    for r in rows:
        table.add_row(
            str(r["id"]), r["received_at"].strftime("%Y-%m-%d %H:%M:%S"), r["sender"],
            r["message_type"] or "", r["control_id"] or "", r["status"], (r["error"] or "")[:80],
        )  # fmt: skip
    console.print(table)


@app.command()
def retry(
    ids: list[int] = typer.Argument(None, help="inbox message ids (default: every failed one)"),
) -> None:
    """Re-process failed messages; prints each outcome."""
    from rhip.exchange.service import failed_ids
    from rhip.exchange.service import retry as run

    engine = _engine()
    ids = ids or failed_ids(engine)
    if not ids:
        console.print("nothing to retry")
        return
    results = run(engine, ids)
    for r in results:
        colour = "green" if r.status == "processed" else "red" if r.status == "failed" else "yellow"
        console.print(f"{r.id}: [{colour}]{r.status}[/] {r.ack_code or ''} {r.error or ''}")
    failed = sum(r.status == "failed" for r in results)
    if failed:
        raise typer.Exit(1)
