"""PNGs a run wrote are read back from memory while the run is under way, and only while the file on
disk is still the one written."""
import numpy as np
import pytest
from PIL import Image

from perse.core import io
from perse.core.io import WrittenImages, keep_written_images, load_png, save_png


def _image(seed: int, shape=(16, 16, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def no_disk_reads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("read from disk")
    monkeypatch.setattr(io.Image, "open", refuse)


def test_written_images_are_served_from_memory_exactly(tmp_path, monkeypatch):
    colour, gray = _image(0), _image(1, (16, 16))
    with keep_written_images():
        save_png(tmp_path / "c.png", colour)
        save_png(tmp_path / "g.png", gray.astype(np.float32) / 255)
        from_disk = Image.open
        monkeypatch.setattr(io.Image, "open", lambda *a, **k: pytest.fail("read from disk"))
        served = load_png(tmp_path / "c.png"), load_png(tmp_path / "g.png", gray=True)
        monkeypatch.setattr(io.Image, "open", from_disk)
        # A colour read of a grey PNG (or the reverse) converts, as from disk.
        assert load_png(tmp_path / "g.png").shape == (16, 16, 3)
    assert np.array_equal(served[0], load_png(tmp_path / "c.png"))
    assert np.array_equal(served[1], load_png(tmp_path / "g.png", gray=True))
    assert served[0].dtype == np.float32 and served[0].max() <= 1.0


def test_a_file_changed_since_it_was_written_is_read_from_disk(tmp_path):
    path = tmp_path / "a.png"
    with keep_written_images():
        save_png(path, _image(0))
        Image.fromarray(_image(5)).save(path)  # replaced behind the cache's back
        assert np.array_equal(load_png(path), _image(5).astype(np.float32) / 255)


def test_nothing_is_kept_outside_a_run(tmp_path, no_disk_reads):
    save_png(tmp_path / "a.png", _image(0))
    with pytest.raises(AssertionError, match="read from disk"):
        load_png(tmp_path / "a.png")


def test_the_budget_drops_the_least_recently_used(tmp_path):
    cache = WrittenImages(budget_bytes=2 * _image(0).nbytes)
    for name in "abc":
        (tmp_path / f"{name}.png").write_bytes(b"x")
    cache.put(tmp_path / "a.png", _image(0))
    cache.put(tmp_path / "b.png", _image(1))
    assert cache.get(tmp_path / "a.png") is not None  # a is now the most recently used
    cache.put(tmp_path / "c.png", _image(2))
    assert cache.get(tmp_path / "b.png") is None
    assert cache.get(tmp_path / "a.png") is not None and cache.get(tmp_path / "c.png") is not None


def test_a_zero_budget_turns_it_off(tmp_path, monkeypatch, no_disk_reads):
    monkeypatch.setenv("PERSE_IMAGE_CACHE_MB", "0")
    with keep_written_images():
        save_png(tmp_path / "a.png", _image(0))
        with pytest.raises(AssertionError, match="read from disk"):
            load_png(tmp_path / "a.png")
