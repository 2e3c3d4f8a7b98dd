"""Identity filter: drop synthesized frames whose face no longer looks like the reference person.

Each frame is embedded with the configured scorer (perse.synth.identity), aligned by the landmarks the
animator projected for it, and compared with the reference portrait's embedding; frames scoring under
the threshold are marked dropped (they stay on disk so a person can inspect them, but training skips
them). PERSE found 15-20% of unfiltered frames drifted and that keeping them hurt identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from perse.synth.identity import IdentityScorer


@dataclass
class IdentityFilter:
    scorer: IdentityScorer
    reference: np.ndarray  # embedding of the reference portrait
    threshold: float

    @classmethod
    def for_portrait(cls, scorer: IdentityScorer, image: np.ndarray, landmarks: np.ndarray,
                     threshold: float | None) -> "IdentityFilter":
        """`threshold` None: the scorer's own same-person threshold (each backend has its own scale)."""
        return cls(scorer, scorer.embed(image, landmarks), float(scorer.threshold if threshold is None else threshold))

    def scores(self, images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray]) -> np.ndarray:
        embeddings = self.scorer.embed_batch(list(images), list(landmarks))
        return np.array([self.scorer.similarity(self.reference, e) for e in embeddings], dtype=np.float64)

    def keep(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) >= self.threshold
