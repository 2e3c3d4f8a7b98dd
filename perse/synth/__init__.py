"""Synthetic attribute dataset (PERSE.md sections 1-2): catalog, editors, animator, identity filter,
interpolation targets, and `run_synth`, which writes the whole dataset of a run."""
from perse.synth.run import run_synth

__all__ = ["run_synth"]
