"""Ingest: a user's photo -> the aligned Portrait every later stage starts from (PERSE.md section 4)."""
from perse.ingest.run import ingest, ingest_to_run

__all__ = ["ingest", "ingest_to_run"]
