import perse
from perse.avatar.avatar import Avatar
from perse.pipeline import run


def test_the_short_paths_are_the_real_objects():
    assert perse.Avatar is Avatar and perse.run is run
    assert perse.build_config("tiny").preset == "tiny"
    for name in perse.__all__:
        assert getattr(perse, name) is not None
