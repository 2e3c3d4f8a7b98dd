"""Accessory looks reuse the lifted head's tensors across looks and threads, and draw only the part of the
head near the accessory: neither may change a look."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from perse.synth.catalog import CATALOG
from perse.synth.edit import accessories, input_image
from perse.synth.edit.parametric import ParametricEditor

# A visor's cast shadow, see-through lenses, parts a few pixels across, the ears hidden under cups, and
# an in-between whose thin parts cover only a share of their pixels.
LOOKS = [("hat", "navy baseball cap", 1.0), ("glasses", "aviator sunglasses", 1.0),
         ("earrings", "silver drop earrings", 1.0), ("headphones", "black headphones", 1.0),
         ("glasses", "round glasses", 0.3)]


@pytest.fixture(scope="module")
def portrait(ingested):
    from perse.synth.run import resize_portrait

    return resize_portrait(ingested["obama"][0], 160)


def _edit(editor, portrait, look):
    name, label, t = look
    category = CATALOG[name]
    return editor.edit(portrait, category, category.value(label), t)


def _same(a, b):
    for field in ("image", "matte", "region"):
        np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=0, atol=1e-6, err_msg=field)


def test_a_reused_head_draws_every_look_as_a_fresh_one(portrait):
    """One editor draws all looks over one lifted head; each must match an editor that never drew
    another (a look's hidden hair or ears must not stay hidden in the next)."""
    fresh = {look: _edit(ParametricEditor(seed=0), portrait, look) for look in LOOKS}
    reused = ParametricEditor(seed=0)
    for look in LOOKS + LOOKS[::-1]:
        _same(_edit(reused, portrait, look), fresh[look])


def test_drawing_only_the_head_near_the_accessory_changes_nothing(portrait, monkeypatch):
    animator, head = ParametricEditor(seed=0)._lifted(portrait)
    image = input_image(portrait)
    parts = []
    for name, label, t in LOOKS:
        spec = accessories.grow(name, CATALOG[name].value(label).spec, t)
        parts.append(animator.accessory_part(accessories.build_accessory(name, spec, head, image)))
    everywhere = np.ones((portrait.size, portrait.size), bool)
    monkeypatch.setattr(animator, "_near", lambda accessory: everywhere)
    for (name, label, t), (own, share) in zip(LOOKS, parts):
        spec = accessories.grow(name, CATALOG[name].value(label).spec, t)
        full_own, full_share = animator.accessory_part(accessories.build_accessory(name, spec, head, image))
        assert share.max() > 0.2, (name, label)  # something to compare
        np.testing.assert_allclose(own, full_own, rtol=0, atol=1e-6, err_msg=f"{name} {label}")
        np.testing.assert_allclose(share, full_share, rtol=0, atol=1e-6, err_msg=f"{name} {label}")


def test_looks_drawn_from_several_threads_match_serial_ones(portrait):
    serial = ParametricEditor(seed=0)
    expected = [_edit(serial, portrait, look) for look in LOOKS]
    # A fresh editor, so that the threads race to lift the head and convert its tensors.
    shared = ParametricEditor(seed=0)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda look: _edit(shared, portrait, look), LOOKS * 3))
    for look, result in zip(LOOKS * 3, results):
        _same(result, expected[LOOKS.index(look)])


def test_the_head_tensors_are_built_once_under_a_race(portrait):
    from perse.synth.animate.lift import LiftAnimator

    animator = LiftAnimator(portrait, renderer="splat")
    with ThreadPoolExecutor(4) as pool:
        built = list(pool.map(lambda _: animator._head_tensors(), range(8)))
    assert all(tensors is built[0] for tensors in built)
