"""The identity filter keeps an animated clip of the reference person and drops another person's frame."""
import numpy as np

from perse.config import build_config
from perse.dataset import EXPRESSION_NAMES
from perse.synth.animate.lift import LiftAnimator
from perse.synth.animate.motion import MotionScript
from perse.synth.filter import IdentityFilter
from perse.synth.identity import make_scorer
from perse.synth.run import resize_portrait

SIZE = 128


def test_filter_drops_a_biden_frame_inserted_into_an_obama_clip(ingested):
    config = build_config("tiny")
    obama = resize_portrait(ingested["obama"][0], SIZE)
    biden = resize_portrait(ingested["biden2"][0], SIZE)
    animator = LiftAnimator(obama)
    expressions = np.zeros((4, len(EXPRESSION_NAMES)))
    expressions[3, EXPRESSION_NAMES.index("jawOpen")] = 0.6
    script = MotionScript(np.array([0.0, 15.0, -15.0, 5.0]), np.array([0.0, 5.0, -5.0, 0.0]), expressions,
                          animator.pivot, obama.fov_deg)
    clip = animator.animate(obama.image / 255.0, obama.matte, script)
    images = list(clip.images[:2]) + [biden.image / 255.0] + list(clip.images[2:])
    landmarks = list(clip.landmarks[:2]) + [biden.landmarks] + list(clip.landmarks[2:])

    identity = IdentityFilter.for_portrait(make_scorer("dlib", config), obama.image, obama.landmarks,
                                           config.synth.identity_threshold)
    scores = identity.scores(images, landmarks)
    kept = identity.keep(scores)
    assert kept.tolist() == [True, True, False, True, True], f"scores {np.round(scores, 3)}"
    assert scores[0] > 0.8, "the frontal neutral frame is the portrait itself"
