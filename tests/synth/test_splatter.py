"""The forward splatter's pieces, and the editor drawing accessories with it on the GPU as on the CPU."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perse.synth.animate.splat import _box3
from perse.synth.catalog import CATALOG
from perse.synth.edit.parametric import ParametricEditor


def test_box_sum_is_the_3x3_neighbourhood_sum_with_zeros_outside():
    x = torch.rand(2, 5, 17, 23)
    expected = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True) * 9
    torch.testing.assert_close(_box3(x), expected, atol=1e-5, rtol=0)
    covered = (torch.rand(1, 1, 9, 9) > 0.5).float()
    assert torch.equal(_box3(covered), torch.round(F.avg_pool2d(covered, 3, stride=1, padding=1) * 9))


@pytest.mark.gpu
def test_editor_draws_accessories_on_cuda_as_on_the_cpu(small_portraits):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    portrait = small_portraits["obama"]
    for name, label in (("glasses", "round glasses"), ("hat", CATALOG["hat"].values[0].label)):
        value = CATALOG[name].value(label)
        on_cpu, on_cuda = (ParametricEditor(device=device).edit(portrait, CATALOG[name], value, 0.6)
                           for device in ("cpu", "cuda"))
        for field in ("image", "region", "matte"):
            np.testing.assert_allclose(getattr(on_cuda, field), getattr(on_cpu, field), atol=1e-5)
