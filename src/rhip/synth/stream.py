"""The demo's report stream: generate lab and exam reports for the synthetic registrations,
write them as files an integrator would send (MLLP frames and NDJSON), and ingest the NDJSON
through the platform's own bulk path, so the demo's reports went through inbox, MPI, terminology
and quality control like any hospital's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from rhip.exchange.ndjson import import_files
from rhip.kernel.crypto import IdentifierVault
from rhip.kernel.settings import Settings
from rhip.synth.reports import generate_reports
from rhip.synth.reports_render import write_files

Progress = Callable[[str, int, int], None]


@dataclass
class StreamSummary:
    messages: int = 0  # report versions generated (preliminary, final, corrected)
    stored: int = 0  # report versions the platform stored
    failed_lines: int = 0  # lines the platform refused (kept in the inbox with their error)
    files: dict[str, Path] = field(default_factory=dict)


def ingest_reports(
    engine: Engine,
    settings: Settings,
    registrations: pd.DataFrame,
    institutions: pd.DataFrame,
    n_reports: int,
    seed: int,
    report: Progress,
) -> StreamSummary:
    """Generate ``n_reports`` reports, write them under ``var/synth`` and import the NDJSON."""
    reports_df, observations_df = generate_reports(registrations, institutions, n_reports, seed)
    files = write_files(reports_df, observations_df, Path(settings.var_dir) / "synth", seed)
    summary = StreamSummary(messages=len(reports_df), files=files)
    vault = IdentifierVault(settings.secret_key)
    paths = sorted(files["ndjson"].glob("*.ndjson"))
    # one pipelined import of every institution's file (each file's sender is its name)
    results = import_files(
        engine, [(path, path.stem) for path in paths],
        lambda index, _size: report("reports", index + 1, len(paths)), vault=vault,
    )  # fmt: skip
    for result in results:
        summary.stored += result.reports
        summary.failed_lines += len(result.errors)
    return summary
