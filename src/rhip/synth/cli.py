"""``rhip synth``: the synthetic city with a progress bar (mounted by ``rhip.cli``)."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rhip.kernel.errors import RhipError
from rhip.kernel.settings import Settings
from rhip.store import make_engine, upgrade
from rhip.synth.service import SynthSummary, synthesize

console = Console()
STAGES = {
    "city": "城市 city",
    "residents": "居民 residents",
    "registrations": "建档 registrations",
    "reports": "报告 report files",
}


def synth(
    residents: int = typer.Option(2000, "--residents", min=0, help="number of residents"),
    seed: int = typer.Option(42, "--seed", help="random seed: the same seed, the same city"),
    reset: bool = typer.Option(False, "--reset", help="empty every rhip table first"),
    reports: int = typer.Option(
        None, "--reports", min=0, help="lab and exam reports to send through ingest (2 × residents)"
    ),
) -> None:
    """Generate the synthetic model city (Shenzhen): institutions, residents, registrations."""
    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(STAGES.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        try:
            summary = synthesize(
                engine, settings, residents, seed, report, reset=reset, reports=reports
            )
        except RhipError as exc:
            bar.stop()
            console.print(f"[red]error[/] ({exc.expression or 'synth'}): {exc.message}")
            raise typer.Exit(code=2) from None
    _print(summary)


def _print(s: SynthSummary) -> None:
    city = "written" if s.city_written else "already there, kept"
    console.print(f"city: {s.districts} districts, {s.institutions} institutions ({city})")
    if not s.residents_written:
        console.print("residents: already registered, kept (use --reset to start again)")
    else:
        _print_people(s)
    if s.stream is not None:
        st = s.stream
        console.print(
            f"reports: {st.messages} messages generated, {st.stored} stored through NDJSON ingest, "
            f"{st.failed_lines} refused (see rhip inbox list --status failed); files in "
            f"{st.files['hl7'].parent}"
        )
    if s.code_maps:
        console.print(f"terminology: {s.code_maps} starter code-map rows loaded (LOINC)")
    if s.accounts:
        logins = ", ".join(f"{a.username} / {a.password}" for a in s.accounts)
        console.print(f"demo accounts (dev only): {logins}")
    console.print(f"done in {s.seconds:.1f} s")


def _print_people(s: SynthSummary) -> None:
    console.print(f"residents: {s.residents}, registrations: {s.registrations}")
    if s.register_stats is not None:
        console.print(f"MPI outcomes: {s.register_stats.outcomes}")
    if s.quality is not None:
        q = s.quality
        console.print(
            f"matching quality vs truth: precision {q.precision:.4f}, recall {q.recall:.4f}, "
            f"F1 {q.f1:.4f}; truth in {s.truth_path}"
        )
