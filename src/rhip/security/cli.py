"""``rhip user add|list``: platform accounts from the command line."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from rhip.kernel.errors import RhipError
from rhip.kernel.settings import Settings
from rhip.security import service
from rhip.security.schemas import Role, UserCreate
from rhip.store import make_engine, upgrade

app = typer.Typer(help="Platform accounts (用户账号).", no_args_is_help=True)
console = Console()


def _engine() -> Engine:
    engine = make_engine(Settings().effective_database_url)
    upgrade(engine)
    return engine


@app.command("add")
def add(
    username: str = typer.Option(..., "--username"),
    password: str = typer.Option(
        ..., "--password", prompt=True, hide_input=True, confirmation_prompt=True
    ),
    role: Role = typer.Option(..., "--role", help="operator | doctor | patient | integrator"),
    institution: str | None = typer.Option(None, "--institution", help="doctor, integrator"),
    patient: str | None = typer.Option(None, "--patient", help="patient: golden patient id"),
    name: str = typer.Option("", "--name", help="display name"),
) -> None:
    """Create an account; a doctor or integrator needs --institution, a patient --patient."""
    try:
        data = UserCreate(
            username=username,
            password=password,
            role=role,
            institution_id=institution,
            patient_id=patient,
            display_name=name,
        )
        made = service.create_user(_engine(), data)
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]error[/] {err['msg'].removeprefix('Value error, ')}")
        raise typer.Exit(code=2) from None
    except RhipError as exc:
        console.print(f"[red]error[/] {exc.expression or 'user'}: {exc.message}")
        raise typer.Exit(code=2) from None
    console.print(f"created [bold]{made.username}[/] ({made.role.value}) as {made.id}")


@app.command("list")
def list_(role: Role | None = typer.Option(None, "--role")) -> None:
    """List accounts (no password hashes)."""
    found = service.list_users(_engine(), role)
    table = Table("username", "role", "institution", "patient", "name", "active", "last login")
    for u in found:
        last = u.last_login_at.isoformat(timespec="minutes") if u.last_login_at else ""
        table.add_row(
            u.username, u.role.value, u.institution_id or "", u.patient_id or "",
            u.display_name, "yes" if u.active else "no", last,
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(found)} accounts")
