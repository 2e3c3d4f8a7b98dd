"""Ingest: a user's photo -> the aligned Portrait every later stage starts from (docs/architecture.md section 3)."""
from perse.ingest.run import ingest, ingest_to_run

__all__ = ["ingest", "ingest_to_run"]
