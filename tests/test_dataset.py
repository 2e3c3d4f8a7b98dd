import json

import numpy as np
import pytest

from perse.core.camera import frontal_viewmat, intrinsics
from perse.core.expressions import EXPRESSION_NAMES
from perse.dataset import VERSION, Clip, DatasetWriter, Frame, Pair, is_complete, read_dataset
from perse.errors import DatasetError

SIZE = 16
NEUTRAL = [0.0] * len(EXPRESSION_NAMES)


def _write(run, n_frames=3):
    rng = np.random.default_rng(0)
    writer = DatasetWriter(run, SIZE, intrinsics(SIZE, 14.0), {"hair": ["source", "blonde", "red"]})
    view = frontal_viewmat(14.0).tolist()

    def frames():
        for i in range(n_frames):
            yield Frame(i, view, [0.1 * i] + NEUTRAL[1:], identity=0.9, kept=i != 1), \
                rng.random((SIZE, SIZE, 3)), rng.random((SIZE, SIZE))

    writer.add_clip(Clip("source", "source", "source", 0.0, 0), frames())
    writer.add_clip(Clip("hair_1", "hair", "blonde", 1.0, 1), frames())
    writer.add_pair(Pair("hair_0_1_t0.50", "hair", "source", "hair_1", 0.5, view, NEUTRAL),
                    rng.random((SIZE, SIZE, 3)), rng.random((SIZE, SIZE)), rng.random((SIZE, SIZE)))
    return writer.close()


def test_round_trip(tmp_path):
    written = _write(tmp_path)
    dataset = read_dataset(tmp_path)
    assert [c.id for c in dataset.meta.clips] == ["source", "hair_1"]
    hair = dataset.clips["hair_1"]
    assert [f.index for f in hair.kept_frames] == [0, 2]
    assert dataset.code_vector(hair).tolist() == [1]
    assert dataset.code_vector(dataset.clips["source"]).tolist() == [0]
    image = dataset.frame_image(hair, hair.frames[2])
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
    assert dataset.pair_mask(dataset.meta.pairs[0]).shape == (SIZE, SIZE)
    assert dataset.pair_matte(dataset.meta.pairs[0]).shape == (SIZE, SIZE)
    assert written.meta.categories == dataset.meta.categories
    assert is_complete(tmp_path)


def test_incomplete_and_corrupt_datasets_are_named(tmp_path):
    assert not is_complete(tmp_path)
    with pytest.raises(DatasetError, match="meta.json is missing"):
        read_dataset(tmp_path)
    _write(tmp_path)
    (tmp_path / "dataset/clips/hair_1/frames/0002.png").unlink()
    with pytest.raises(DatasetError, match="0002.png is missing"):
        read_dataset(tmp_path)
    meta_path = tmp_path / "dataset/meta.json"
    meta = json.loads(meta_path.read_text())
    meta["clips"][1]["code"] = 9
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="code 9 is outside category 'hair'"):
        read_dataset(tmp_path, check_files=False)
    # A dataset from an older contract (pairs without their matte) is named and rewritten by synth.
    meta["clips"][1]["code"], meta["version"] = 1, 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=rf"dataset version 1, this PERSE Studio reads {VERSION}; re-run `perse synth`"):
        read_dataset(tmp_path, check_files=False)


def test_a_dataset_of_the_four_old_expression_controls_is_rewritten(tmp_path):
    _write(tmp_path)
    meta_path = tmp_path / "dataset/meta.json"
    meta = json.loads(meta_path.read_text())
    meta["version"] = 3
    meta["expression_names"] = ["jaw_open", "smile", "blink", "brow_raise"]
    meta_path.write_text(json.dumps(meta))
    assert not is_complete(tmp_path)
    meta["version"] = VERSION
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"expression controls \(jaw_open, smile, blink, brow_raise\) are not .*re-run"):
        read_dataset(tmp_path, check_files=False)


def test_writer_rejects_wrong_image_shape(tmp_path):
    writer = DatasetWriter(tmp_path, SIZE, intrinsics(SIZE, 14.0), {"hair": ["source", "red"]})
    bad = [(Frame(0, np.eye(4).tolist(), NEUTRAL), np.zeros((8, 8, 3)), np.zeros((SIZE, SIZE)))]
    with pytest.raises(DatasetError, match=r"expected an image of shape \(16, 16, 3\)"):
        writer.add_clip(Clip("c", "hair", "red", 1.0, 1), bad)


def test_held_out_looks_take_their_categorys_last_codes(tmp_path):
    rng = np.random.default_rng(0)
    view = frontal_viewmat(14.0).tolist()

    def frames():
        return [(Frame(0, view, NEUTRAL), rng.random((SIZE, SIZE, 3)), rng.random((SIZE, SIZE)))]

    def write(run, hair_clips):
        writer = DatasetWriter(run, SIZE, intrinsics(SIZE, 14.0), {"hair": ["source", "blonde", "red", "gray"]})
        writer.add_clip(Clip("source", "source", "source", 0.0, 0), frames())
        for code, holdout in hair_clips:
            writer.add_clip(Clip(f"hair_{code}", "hair", "x", 1.0, code, holdout=holdout), frames())
        writer.add_pair(Pair("p", "hair", "hair_1", "hair_3", 0.5, view, NEUTRAL),
                        rng.random((SIZE, SIZE, 3)), rng.random((SIZE, SIZE)), rng.random((SIZE, SIZE)))
        return writer.close()

    write(tmp_path / "ok", [(1, False), (2, False), (3, True)])
    dataset = read_dataset(tmp_path / "ok")
    assert dataset.clips["hair_3"].holdout and not dataset.clips["hair_2"].holdout
    assert dataset.trained_categories == {"hair": ["source", "blonde", "red"]}
    assert [c.id for c in dataset.held_out_looks] == ["hair_3"]
    assert [c.id for c in dataset.trained_clips] == ["source", "hair_1", "hair_2"]
    assert dataset.trained_pairs == []  # the pair reaches a held-out look: training must not see it
    with pytest.raises(DatasetError, match="trained clip 'hair_3' has code 3, after a held-out look"):
        write(tmp_path / "gap", [(1, False), (2, True), (3, False)])
    writer = DatasetWriter(tmp_path / "source", SIZE, intrinsics(SIZE, 14.0), {"hair": ["source"]})
    writer.add_clip(Clip("source", "source", "source", 0.0, 0, holdout=True), frames())
    with pytest.raises(DatasetError, match="source clip 'source' cannot be held out"):
        writer.close()
