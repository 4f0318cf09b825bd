"""The ``rhip`` command (Typer): serve, demo, db, synth, mpi, index, institution."""

from rhip.cli.main import app, main

__all__ = ["app", "main"]
