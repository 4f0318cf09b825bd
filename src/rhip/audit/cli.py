"""``rhip audit verify``: check the access log's hash chain end to end."""

from __future__ import annotations

import typer
from rich.console import Console

from rhip.audit.chain import chain_key, verify
from rhip.kernel.settings import Settings
from rhip.store import make_engine, upgrade

app = typer.Typer(help="Access audit log (访问审计).", no_args_is_help=True)
console = Console()


@app.callback()
def audit() -> None:
    """Access audit log (访问审计)."""  # a group even with one command: ``rhip audit verify``


@app.command("verify")
def verify_cmd(
    batch: int = typer.Option(5000, "--batch", min=1, help="events read per round trip"),
) -> None:
    """Recompute every hash in order and compare with the head; exit 1 at the first break."""
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    result = verify(engine, chain_key(settings.secret_key), batch=batch)
    if result.ok:
        console.print(f"audit log intact: {result.count} events, head agrees")
        return
    console.print(f"[red]audit log broken at event {result.first_broken}[/]: {result.problem}")
    raise typer.Exit(code=1)
