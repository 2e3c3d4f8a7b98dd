"""Synthetic attribute dataset (docs/architecture.md section 1): catalog, editors, animator, identity filter,
interpolation targets, and `run_synth`, which writes the whole dataset of a run."""
from perse.synth.run import run_synth

__all__ = ["run_synth"]
