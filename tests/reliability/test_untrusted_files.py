"""Files read from a run folder are data, never code: a booby-trapped checkpoint or point cloud is refused
with a clear message, and the code it carries does not run."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from perse.avatar.avatar import Avatar, load_checkpoint
from perse.cli import main
from perse.errors import DatasetError, PerseError


class Trap:
    """Unpickling this calls Path.touch(marker): code chosen by whoever wrote the file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


# torch warns that a plain pickle's protocol is not its own before refusing it.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_booby_trapped_checkpoint_is_refused_and_does_not_run(run_copy, tmp_path, capsys, writer):
    marker = tmp_path / "code-ran"
    checkpoint = run_copy / "avatar" / "checkpoint.pt"
    state = torch.load(checkpoint, weights_only=True)
    state["config"] = Trap(marker)
    if writer == "torch.save":
        torch.save(state, checkpoint)
    else:
        with checkpoint.open("wb") as handle:
            pickle.dump(state, handle)
    with pytest.raises(PerseError, match="refused to load: it holds Python objects"):
        Avatar.load(run_copy, device="cpu")
    assert main(["render", str(run_copy), "-o", str(tmp_path / "out.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refused to load" in err
    assert not marker.exists(), "the checkpoint's code ran"
    assert not (tmp_path / "out.png").exists()


def test_a_real_checkpoint_holds_only_data(finished_run):
    """Everything training saves (optimizer and densifier state included) loads without unpickling code."""
    state = load_checkpoint(finished_run / "avatar" / "checkpoint.pt")
    assert {"model", "optimizer", "densify", "config", "holdout"} <= set(state)


def test_a_checkpoint_of_something_else_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(PerseError, match="not a PERSE avatar checkpoint .*lacks model"):
        load_checkpoint(path)


def test_a_point_cloud_with_python_objects_is_refused(run_copy, mini_config):
    from perse.avatar.train import Trainer

    np.savez(run_copy / "dataset" / "init_points.npz", points=np.array([object()] * 3, dtype=object),
             colors=np.zeros((3, 3)))
    with pytest.raises(DatasetError, match="cannot read the initial point cloud"):
        Trainer(run_copy, mini_config(), "cpu")
