"""``rhip mpi …``: batch de-duplication and the review queue of the master patient index."""

from __future__ import annotations

import typer
from rich.console import Console

app = typer.Typer(
    help="Master patient index (患者主索引): de-duplication, reviews.", no_args_is_help=True
)
console = Console()


def _engine_and_vault():
    from rhip.kernel.crypto import IdentifierVault
    from rhip.kernel.settings import Settings
    from rhip.store import make_engine, upgrade

    settings = Settings()
    engine = make_engine(settings.effective_database_url)
    upgrade(engine)
    return engine, IdentifierVault(settings.secret_key)


@app.command()
def dedupe(
    merge: bool = typer.Option(False, help="merge duplicates found instead of queueing reviews"),
    threshold: float = typer.Option(0.95, help="match probability at which splink clusters"),
) -> None:
    """De-duplicate the whole index with splink on DuckDB and store the estimated parameters."""
    from rhip.identity.batch import dedupe_index

    engine, _ = _engine_and_vault()
    with console.status("estimating parameters and scoring pairs with splink …"):
        report = dedupe_index(engine, merge=merge, threshold=threshold)
    console.print(
        f"{report.records:,} registrations, {report.pairs:,} scored pairs; "
        f"{report.duplicate_clusters:,} clusters span several golden records → "
        f"{report.reviews:,} reviews queued, {report.merged:,} merged. "
        f"Parameters stored (prior {report.parameters.prior:.2e})."
    )


@app.command()
def reviews(limit: int = typer.Option(20, help="how many to list")) -> None:
    """List open review items (人工审核): provisional record, candidate, weight."""
    from rhip.identity.linkage import open_reviews

    engine, _ = _engine_and_vault()
    for item in open_reviews(engine, limit):
        console.print(
            f"{item['id']}  Patient/{item['provisional_person_id']} → "
            f"Patient/{item['candidate_person_id']}  weight {item['weight']:.1f}"
        )


@app.command()
def decide(
    review_id: str,
    link: bool = typer.Option(..., "--link/--reject", help="link to the candidate or keep apart"),
) -> None:
    """Close a review item: merge the provisional record into the candidate, or keep it apart."""
    from rhip.identity.linkage import decide_review

    engine, _ = _engine_and_vault()
    person = decide_review(engine, review_id, link=link, actor="cli")
    console.print(f"review {review_id} closed; registration belongs to Patient/{person}")
