"""``rhip …``: one entry point; each context contributes its own sub-commands."""

from __future__ import annotations

import importlib
import logging

import typer
from rich.console import Console

from rhip.kernel.errors import RhipError
from rhip.kernel.settings import Settings

console = Console()
app = typer.Typer(
    help="rhip — Regional Health Information Platform (区域全民健康信息平台).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema: migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")

# (module, attribute, name): sub-apps that contexts expose
SUBAPPS = (
    ("rhip.identity.cli", "app", "mpi"),
    ("rhip.index.cli", "app", "index"),
    ("rhip.registry.cli", "app", "institution"),
    ("rhip.exchange.cli", "app", "inbox"),
    ("rhip.exchange.terminology", "app", "terminology"),
    ("rhip.security.cli", "app", "user"),
    ("rhip.audit.cli", "app", "audit"),
)
COMMANDS = (
    ("rhip.synth.cli", "synth", "synth"),
    ("rhip.exchange.ndjson", "ingest", "ingest"),
)


_mounted: list[bool] = []


def _mount() -> None:
    """Add the contexts' sub-commands once (they are imported lazily, at first use)."""
    if _mounted:
        return
    _mounted.append(True)
    for module, attr, name in SUBAPPS:
        app.add_typer(_load(module, attr), name=name)
    for module, attr, name in COMMANDS:
        app.command(name=name)(_load(module, attr))


def _load(module: str, attr: str):
    return getattr(importlib.import_module(module), attr)


def engine_from_settings(settings: Settings | None = None, migrate: bool = True):
    """The configured engine, with migrations applied (idempotent)."""
    from rhip.store import make_engine, upgrade

    settings = settings or Settings()
    engine = make_engine(settings.effective_database_url)
    if migrate:
        upgrade(engine)
    return engine


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply migrations to the configured database (RHIP_DATABASE_URL, default ./var/rhip.db)."""
    from rhip.store import make_engine, upgrade
    from rhip.store.migrate import current

    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine, revision)
    console.print(
        f"database at revision [bold]{current(engine)}[/] ({engine.url.render_as_string()})"
    )


@app.command()
def serve(
    host: str = typer.Option(None, help="address to bind (default RHIP_HOST or 127.0.0.1)"),
    port: int = typer.Option(None, help="HTTP port (default RHIP_PORT or 8000)"),
    mllp_port: int = typer.Option(None, help="HL7 v2 MLLP port (default 2575; 0 disables)"),
    mllp_processes: int = typer.Option(
        None, help="MLLP worker processes, e.g. one per core (PostgreSQL; default 1)"
    ),
) -> None:
    """Run the platform: HTTP (FHIR + REST + pages) and the HL7 v2 MLLP listener."""
    import uvicorn

    from rhip.api import create_app

    given = {"host": host, "port": port, "mllp_port": mllp_port, "mllp_processes": mllp_processes}
    updates = {k: v for k, v in given.items() if v is not None}
    settings = Settings().model_copy(update=updates)
    engine = engine_from_settings(settings)
    url = f"http://{settings.host}:{settings.port}"
    mllp = f"MLLP {settings.host}:{settings.mllp_port}" if settings.mllp_port else "MLLP off"
    if settings.mllp_port and settings.mllp_processes > 1 and engine.dialect.name == "postgresql":
        mllp += f" in {settings.mllp_processes} processes"
    console.print(
        f"rhip listening on [bold]{url}/[/] (FHIR base {url}/fhir, {mllp}, "
        f"database {engine.dialect.name})"
    )
    from rhip.security.logmask import uvicorn_log_config

    uvicorn.run(
        create_app(settings, engine, mllp=True),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(),  # resident IDs and phones never reach a log in clear
    )


@app.command()
def demo(
    residents: int = typer.Option(2000, help="residents to generate when the database is empty"),
    seed: int = typer.Option(42, help="random seed of the synthetic city"),
    host: str = typer.Option(None, help="address to bind"),
    port: int = typer.Option(None, help="HTTP port"),
    mllp_port: int = typer.Option(None, help="HL7 v2 MLLP port (0 disables)"),
) -> None:
    """Generate a synthetic city if the database is empty, then serve it."""
    synth = _load("rhip.synth.cli", "synth")
    synth(residents=residents, seed=seed, reset=False, reports=None)
    serve(host=host, port=port, mllp_port=mllp_port, mllp_processes=None)


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations report through the CLI
    from rhip.security.logmask import install

    install()
    _mount()
    try:
        app()
    except RhipError as exc:
        console.print(f"[red]error:[/] {exc.message}")
        raise SystemExit(2) from None
