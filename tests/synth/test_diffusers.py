"""The hub editor through its real loading path, offline, on a tiny random inpainting pipeline the test
builds and saves (no downloaded weights): strength 0 is the input, changes stay in the region."""
import json

import numpy as np
import pytest

from perse.config import build_config
from perse.errors import PerseError
from perse.synth.catalog import CATALOG
from perse.synth.edit import input_image, make_editor
from perse.synth.edit.diffusers import inpaint_region


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory):
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionInpaintPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-inpaint")
    unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=9,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        norm_num_groups=4)
    text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=16,
                                        intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                                        vocab_size=1000, projection_dim=16))
    # A byte-level BPE vocabulary with no merges: every byte is a token (transformers 5 reads the
    # tokenizer only through from_pretrained on a folder).
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("\u00a1"), ord("\u00ac") + 1),
                 *range(ord("\u00ae"), ord("\u00ff") + 1)]
    symbols = [chr(c) for c in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for symbol in symbols:
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    tok_dir = folder / "tok"
    tok_dir.mkdir()
    (tok_dir / "vocab.json").write_text(json.dumps(vocab))
    (tok_dir / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir), model_max_length=16)
    pipe = StableDiffusionInpaintPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet,
                                          scheduler=DDIMScheduler(steps_offset=1), safety_checker=None, feature_extractor=None,
                                          requires_safety_checker=False)
    model = folder / "pipeline"
    pipe.save_pretrained(model)
    return model


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _editor(model):
    config = build_config("tiny", overrides={"synth.editor": "diffusers", "synth.diffusers_model": str(model),
                                             "synth.diffusers_steps": 2, "device": "cpu"})
    return make_editor("diffusers", config)


@pytest.fixture(scope="module")
def loaded_editor(tiny_pipeline):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        editor = _editor(tiny_pipeline)
        editor.pipeline()  # loads through from_pretrained while the hub is off
    return editor


@pytest.mark.parametrize("name", ["hair", "hat"])
def test_inpainting_edit_through_the_saved_pipeline(loaded_editor, small_portraits, name):
    from perse.synth.run import resize_portrait

    editor = loaded_editor
    portrait = resize_portrait(small_portraits["astronaut"], 64)
    category = CATALOG[name]
    value = category.values[0]
    source = input_image(portrait)
    assert np.array_equal(editor.edit(portrait, category, value, 0.0).image, source)
    result = editor.edit(portrait, category, value, 1.0)
    assert result.image.shape == source.shape and result.image.dtype == np.float32
    changed = np.abs(result.image - source).max(-1) > 2 / 255
    assert changed[result.region < 0.5].mean() <= 0.01
    assert changed[result.region > 0.5].mean() > 0.5, "a random pipeline still repaints its region"
    again = editor.edit(portrait, category, value, 1.0)
    np.testing.assert_allclose(again.image, result.image, atol=1e-5)  # seeded from the config
    half = editor.edit(portrait, category, value, 0.5)
    np.testing.assert_allclose(half.image, 0.5 * (source + result.image), atol=2e-3)


def test_inpaint_regions_fit_their_category(small_portraits):
    portrait = small_portraits["obama"]
    hat = inpaint_region(portrait, CATALOG["hat"]) > 0.5
    glasses = inpaint_region(portrait, CATALOG["glasses"]) > 0.5
    lips = inpaint_region(portrait, CATALOG["lips"]) > 0.5
    rows = np.nonzero(hat)[0]
    assert rows.min() == 0 or rows.mean() < np.nonzero(glasses)[0].mean()
    assert lips.sum() < glasses.sum() < hat.sum()
    assert (portrait.masks["lips"][lips] > 0).mean() > 0.5


def test_missing_model_says_what_to_do(offline, small_portraits, tmp_path):
    editor = _editor(tmp_path / "nowhere-model")
    with pytest.raises(PerseError, match="synth.diffusers_model"):
        editor.edit(small_portraits["obama"], CATALOG["hair"], CATALOG["hair"].values[0])
    (tmp_path / "empty").mkdir()
    with pytest.raises(PerseError, match="not a diffusers pipeline folder"):
        _editor(tmp_path / "empty").edit(small_portraits["obama"], CATALOG["hair"], CATALOG["hair"].values[0])
