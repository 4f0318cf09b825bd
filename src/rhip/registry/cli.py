"""``rhip institution add|list|coverage``: the registry from the command line."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine

from rhip.kernel.errors import ManyErrors, RhipError
from rhip.kernel.settings import Settings
from rhip.registry import service
from rhip.registry.schemas import InstitutionCreate, InstitutionFilter
from rhip.registry.vocabulary import CONNECTION_STATUSES, TYPES
from rhip.store import make_engine, upgrade

app = typer.Typer(help="Institution registry (机构注册).", no_args_is_help=True)
console = Console()


def _engine() -> Engine:
    engine = make_engine(Settings().effective_database_url)
    upgrade(engine)
    return engine


def _csv(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


def _fail(exc: RhipError) -> typer.Exit:
    """Print each problem naming the command-line option it came from."""
    errors = exc.errors if isinstance(exc, ManyErrors) else [exc]
    for err in errors:
        field = (err.expression or "").split("[")[0]
        option = {"district_code": "district", "connection_status": "status"}.get(field, field)
        name = f"--{option.replace('_', '-')}" if option else "institution"
        console.print(f"[red]error[/] {name}: {err.message}")
    return typer.Exit(code=2)


@app.command("add")
def add(
    credit_code: str = typer.Option(..., "--credit-code", help="统一社会信用代码 (GB 32100)"),
    name: str = typer.Option(..., "--name"),
    type: str = typer.Option(..., "--type", help=", ".join(TYPES)),
    district: str = typer.Option(..., "--district", help="GB/T 2260 code, e.g. 440305"),
    grade: str | None = typer.Option(None, "--grade", help="三级甲等 … or 3A …"),
    address: str | None = typer.Option(None, "--address"),
    phone: str | None = typer.Option(None, "--phone"),
    status: str = typer.Option("not_connected", "--status", help=", ".join(CONNECTION_STATUSES)),
    feeds: str = typer.Option("", "--feeds", help="comma-separated: adt,lab,exam,…"),
    functions: str = typer.Option("", "--functions", help="comma-separated: viewing,referral,…"),
    allow_cidrs: str = typer.Option("", "--allow-cidrs", help="MLLP peers: 10.1.0.0/16,…"),
) -> None:
    """Register an institution; every invalid value is reported with its option."""
    data = InstitutionCreate(
        credit_code=credit_code,
        name=name,
        type=type,
        district_code=district,
        grade=grade,
        address=address,
        phone=phone,
        connection_status=status,
        feeds=_csv(feeds),
        functions=_csv(functions),
        allow_cidrs=_csv(allow_cidrs),
    )
    try:
        made = service.register(_engine(), data)
    except RhipError as exc:
        raise _fail(exc) from None
    console.print(f"registered [bold]{made.name}[/] as {made.id} ({made.district_name})")


@app.command("list")
def list_(
    type: list[str] = typer.Option([], "--type", help="repeat for several"),
    district: list[str] = typer.Option([], "--district", help="GB/T 2260 code; repeatable"),
    name: str | None = typer.Option(None, "--name", help="name contains"),
    limit: int = typer.Option(50, "--limit", min=0),
) -> None:
    """List institutions (name order)."""
    flt = InstitutionFilter(
        types=tuple(type), district_codes=tuple(district), name_contains=(name,) if name else ()
    )
    total, found = service.search(_engine(), flt, limit, 0)
    table = Table("id", "name", "type", "grade", "district", "status")
    for i in found:
        table.add_row(
            i.id, i.name, TYPES[i.type], i.grade or "", i.district_name or "", i.connection_status
        )
    console.print(table)
    console.print(f"{len(found)} of {total}")


@app.command("coverage")
def coverage() -> None:
    """Connection coverage (接入覆盖率) by type and by district."""
    cov = service.coverage(_engine())
    for title, rows in (("type", cov.by_type), ("district", cov.by_district)):
        table = Table(title, "total", "connected", "testing", "rate", title=f"by {title}")
        for r in rows:
            rate = f"{r.rate:.1%}" if r.rate is not None else "–"
            table.add_row(r.label, str(r.total), str(r.connected), str(r.testing), rate)
        console.print(table)
    rate = f"{cov.rate:.1%}" if cov.rate is not None else "–"
    console.print(f"all: {cov.connected} of {cov.total} connected ({rate})")
