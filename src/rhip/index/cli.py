"""`rhip index …` — build, analyse and publish a development index from the command line.

Mounted by the main CLI as `rhip index`; also runnable alone: `python -m rhip.index.cli build …`.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from rhip.index.errors import IndexInputError
from rhip.index.io import read_data, read_framework
from rhip.index.pipeline import run
from rhip.index.report import publish
from rhip.index.synth import SYNTHETIC_NOTE, write_synthetic
from rhip.index.uncertainty import UncertaintySpec, sensitivity, uncertainty

app = typer.Typer(
    help="Health informatization development index (卫生健康信息化发展指数).",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
DEFAULT_FRAMEWORK = "national_framework.yaml"


def default_spec(pipeline_steps: list[str], replications: int, seed: int) -> UncertaintySpec:
    """COINr's usual alternatives: ±25 % weights, min-max 1–100 or z-score (10, 2), arithmetic or
    geometric mean, and Winsorisation limits 1–5 when the pipeline treats outliers."""
    return UncertaintySpec(
        replications=replications,
        seed=seed,
        weight_noise=0.25,
        normalisers=[
            {"method": "minmax", "lower": 1, "upper": 100},
            {"method": "zscore", "mean": 10, "sd": 2},
        ],
        aggregators=["arithmetic", "geometric"],
        winmax=[1, 2, 3, 4, 5] if "treat" in pipeline_steps else [],
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@app.command()
def build(
    framework: Path = typer.Argument(
        ..., help="Indicator metadata: COINr iMeta (CSV/Excel) or YAML."
    ),
    data: Path = typer.Argument(..., help="Unit data: COINr iData (CSV/Excel)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    pipeline: Path | None = typer.Option(
        None, "--pipeline", "-p", help="Pipeline YAML (default: framework's)."
    ),
    replications: int = typer.Option(
        0, "--uncertainty", "-u", help="Monte Carlo replications (0 = skip)."
    ),
    sa_samples: int = typer.Option(
        0, "--sensitivity", help="Base samples N for sensitivity indices (0 = skip)."
    ),
    ua_spec: Path | None = typer.Option(
        None, "--ua-spec", help="YAML UncertaintySpec (what varies)."
    ),
    seed: int = typer.Option(1, help="Random seed of the analysis."),
    note: str = typer.Option("", help="Banner note for the report (e.g. data caveats)."),
) -> None:
    """Build the index; write scores.csv, ranks.csv, index.xlsx and report.html into OUT."""
    try:
        fw = read_framework(framework)
        result = run(fw, read_data(data, fw), pipeline)
        ua, sa = _analyse(result, replications, sa_samples, ua_spec, seed)
        if not note and "SYNTHETIC" in " ".join(_read_notes(data)):
            note = SYNTHETIC_NOTE
        paths = publish(result, out, ua, sa, note=note, ua_replications=replications)
    except IndexInputError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    top = result.table().head(5)
    console.print(
        f"[green]built[/green] {fw.name}: {len(top)} top units "
        + ", ".join(f"{r.Rank:g}. {r.uName or r.uCode}" for r in top.itertuples())
    )
    if ua is not None and ua.failed:
        console.print(
            f"[yellow]{ua.failed} replications could not be computed (e.g. geometric mean of ≤ 0)"
        )
    for kind, path in paths.items():
        console.print(f"  {kind}: {path}")


def _analyse(result, replications: int, sa_samples: int, ua_spec: Path | None, seed: int):
    """Uncertainty (rank intervals) and sensitivity indices, with progress bars."""
    if not (replications or sa_samples):
        return None, None
    steps = [s.step for s in result.pipeline.steps]
    if ua_spec:
        spec = UncertaintySpec(**yaml.safe_load(ua_spec.read_text(encoding="utf-8")))
    else:
        spec = default_spec(steps, replications or 1000, seed)
    spec = spec.model_copy(update={"replications": replications or spec.replications})
    ua = sa = None
    if replications:
        with _progress() as bar:
            task = bar.add_task("uncertainty 不确定性", total=spec.replications)
            ua = uncertainty(result, spec, progress=lambda k: bar.advance(task, k))
    if sa_samples:
        with _progress() as bar:
            total = sa_samples * (len(spec.groups(len(result.codes))) + 2)
            task = bar.add_task("sensitivity 敏感性", total=total)
            sa = sensitivity(result, spec, n=sa_samples, progress=lambda k: bar.advance(task, k))
    return ua, sa


def _read_notes(data: Path) -> list[str]:
    if data.suffix.lower() != ".csv":
        return []
    with data.open(encoding="utf-8-sig") as fh:
        head = [fh.readline() for _ in range(2)]
    return head


@app.command()
def synth(
    out: Path = typer.Option(Path("cities.csv"), "--out", "-o", help="CSV or .xlsx to write."),
    framework: Path | None = typer.Option(
        None, help="Framework to generate for (default: national)."
    ),
    seed: int = typer.Option(2024, help="Random seed."),
) -> None:
    """Write the clearly-labelled SYNTHETIC data set: 36 major cities × 2021–2023."""
    try:
        fw = read_framework(framework) if framework else _default_framework()
        path = write_synthetic(fw, out, seed=seed)
    except IndexInputError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"wrote {path} (SYNTHETIC: 36 cities × 3 years, {len(fw.indicators)} indicators)")


@app.command("framework")
def framework_cmd(out: Path = typer.Option(Path("framework.yaml"), "--out", "-o")) -> None:
    """Write the default national framework (3 aspects, 8 dimensions) as editable YAML."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with resources.as_file(resources.files("rhip.index.data") / DEFAULT_FRAMEWORK) as src:
        shutil.copyfile(src, out)
    console.print(f"wrote {out} — edit indicators, weights and goalposts freely")


@app.command()
def demo(
    out: Path = typer.Option(Path("var/index-demo"), "--out", "-o"),
    replications: int = typer.Option(1000, "--uncertainty", "-u"),
) -> None:
    """Default framework + synthetic cities → full report with uncertainty analysis."""
    out.mkdir(parents=True, exist_ok=True)
    framework_cmd(out / "framework.yaml")
    synth(out / "cities.csv", None, 2024)
    build(
        out / "framework.yaml",
        out / "cities.csv",
        out / "report",
        None,
        replications,
        500,
        None,
        1,
        "",
    )


def _default_framework():
    with resources.as_file(resources.files("rhip.index.data") / DEFAULT_FRAMEWORK) as src:
        return read_framework(src)


if __name__ == "__main__":
    app()
