"""Hub editor: diffusion inpainting inside the category's region with the catalog value's prompt.

The model (config synth.diffusers_model) is a hub id or a local folder saved with `save_pretrained`;
any diffusers inpainting pipeline that AutoPipelineForInpainting knows loads. Steps, guidance and the
seed come from the config. Strength t blends the inpainted pixels into the input inside the feathered
region, so t = 0 returns the input exactly. A hat or earrings can grow the silhouette: the person
matte is re-segmented inside the region.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np

from perse.errors import PerseError
from perse.synth import face as F
from perse.synth.catalog import Category, Value
from perse.synth.edit import EditResult, check_strength, input_image

PROMPT_SUFFIX = ", portrait photo, realistic, detailed, natural light"
NEGATIVE_PROMPT = "blurry, deformed, cartoon, painting, extra face, text, watermark"


def inpaint_region(portrait, category: Category) -> np.ndarray:
    """Where a hub editor may repaint for this category: its region masks, grown to hold the new
    attribute (a hat above the head, glasses across the eye band, earrings below the lobes)."""
    size = portrait.size
    face = F.FaceFrame(np.asarray(portrait.landmarks, np.float64))
    unit = face.face_height
    present = [portrait.masks[name] for name in category.regions if name in portrait.masks]
    if not present:
        raise PerseError(f"portrait {portrait.source or '(in memory)'}: none of the region masks "
                         f"{', '.join(category.regions)} exist; re-run `perse ingest`")
    mask = (np.max(np.stack(present), axis=0) > 0.5).astype(np.uint8)
    coords = np.arange(size, dtype=np.float32) + 0.5
    xx, yy = np.meshgrid(coords, coords)
    if category.kind == "glasses":
        top, bottom = face.brow_top, float(face.xy[F.NOSE_TIP, 1])
        left, right = float(face.xy[F.RIGHT_FACE_EDGE, 0]), float(face.xy[F.LEFT_FACE_EDGE, 0])
        mask = ((yy > top) & (yy < bottom) & (xx > left) & (xx < right)).astype(np.uint8)
    elif category.kind == "hat":
        above = yy < float(face.xy[F.FOREHEAD_TOP, 1]) + 0.15 * unit
        beside = np.abs(xx - face.center_x) < 0.85 * face.face_width
        mask = np.maximum(mask, (above & beside).astype(np.uint8))
    elif category.kind == "earrings":
        for index in (F.RIGHT_FACE_EDGE, F.LEFT_FACE_EDGE):
            centre = (int(face.xy[index, 0]), int(face.xy[index, 1] + 0.3 * unit))
            cv2.ellipse(mask, centre, (int(0.12 * unit), int(0.3 * unit)), 0, 0, 360, 1, -1)
    grow = max(1, int(round(0.03 * unit)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), max(0.5, grow / 2)), 0, 1)


class DiffusersEditor:
    name = "diffusers"
    exact = False

    def __init__(self, model: str, steps: int, guidance: float, seed: int, device: str):
        if steps < 1:
            raise PerseError(f"synth.diffusers_steps={steps}: inpainting needs at least one step")
        self.model, self.steps, self.guidance, self.seed, self.device = model, int(steps), float(guidance), int(seed), device
        self._pipeline = None

    @classmethod
    def from_config(cls, config) -> "DiffusersEditor":
        syn = config.synth
        return cls(syn.diffusers_model, syn.diffusers_steps, syn.diffusers_guidance, config.seed,
                   config.resolved_device())

    def pipeline(self):
        if self._pipeline is None:
            import torch
            from diffusers import AutoPipelineForInpainting

            local = Path(self.model).expanduser()
            source = str(local) if local.exists() else self.model
            if local.exists() and not (local / "model_index.json").exists():
                raise PerseError(f"{local}: not a diffusers pipeline folder (no model_index.json); point "
                                 f"synth.diffusers_model at a folder written by save_pretrained or at a hub id")
            dtype = torch.float16 if self.device == "cuda" else torch.float32
            try:
                pipe = AutoPipelineForInpainting.from_pretrained(source, dtype=dtype)
            except (OSError, ValueError) as exc:
                raise PerseError(f"cannot load the inpainting model '{self.model}' ({exc.__class__.__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}). Download it where a hub is "
                                 f"reachable and set synth.diffusers_model to the local folder, or use "
                                 f"synth.editor=parametric") from exc
            pipe.set_progress_bar_config(disable=True)
            self._pipeline = pipe.to(self.device)
        return self._pipeline

    def edit(self, portrait, category: Category, value: Value, strength: float = 1.0) -> EditResult:
        import torch
        from PIL import Image

        t = check_strength(strength)
        image = input_image(portrait)
        region = inpaint_region(portrait, category)
        size = portrait.size
        work = max(64, int(round(size / 8)) * 8)
        pipe = self.pipeline()
        generator = torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + zlib.crc32(
            f"{category.name}/{value.label}".encode()))
        as_pil = lambda a: Image.fromarray(np.clip(np.round(a * 255), 0, 255).astype(np.uint8))  # noqa: E731
        with torch.no_grad():
            out = pipe(prompt=value.prompt + PROMPT_SUFFIX, negative_prompt=NEGATIVE_PROMPT,
                       image=as_pil(image).resize((work, work), Image.LANCZOS),
                       mask_image=as_pil(region).resize((work, work), Image.BILINEAR),
                       height=work, width=work, num_inference_steps=self.steps, guidance_scale=self.guidance,
                       generator=generator, output_type="np").images[0]
        painted = cv2.resize(np.asarray(out, np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        weight = (t * region)[..., None]
        edited = image * (1 - weight) + np.clip(painted, 0, 1) * weight
        matte = np.asarray(portrait.matte, np.float32)
        if category.kind in ("hat", "earrings"):
            matte = np.maximum(matte, t * region * _person(painted))
        return EditResult(edited.astype(np.float32), (region > 1e-3).astype(np.float32) * np.maximum(region, 0.5),
                          matte.astype(np.float32))


def _person(image: np.ndarray) -> np.ndarray:
    """Person alpha of a generated image (selfie segmentation), to pick up a new hat's outline."""
    from perse.ingest import mesh

    rgb = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return mesh.SELFIE_SEGMENTATION.process(rgb).segmentation_mask.astype(np.float32)
