"""Many portraits in one go: `run_batch(photos, out, config)` runs each photo's pipeline into
`out/<photo stem>/` as a Ray task (one GPU, or a few CPU cores, per portrait; on this machine or a
cluster), skips finished portraits, resumes interrupted ones and writes a summary of every portrait's
measures (docs/batch.md). Ray is imported only when a batch runs."""
from perse.batch.run import run_batch
from perse.batch.summary import PortraitStatus

__all__ = ["PortraitStatus", "run_batch"]
