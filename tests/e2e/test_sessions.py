"""Five visitors at once, through gradio_client: every run finishes, and each session's outputs (its
avatar, its edits, its work folder) come from its own photo, never a neighbour's."""
from __future__ import annotations

import time

import numpy as np
import pytest
from appserver import E2E_OVERRIDES, PORTRAITS
from PIL import Image

pytestmark = pytest.mark.slow
# All five builds run at the same time (the default of one at a time would hide any mixing), each as
# cheap as a run can be while still fitting its own portrait.
SERVER_ENV = {"PERSE_RUN_CONCURRENCY": "5", "PERSE_APP_OVERRIDES": E2E_OVERRIDES + ";avatar.steps=30"}
COMPARE_PX = 32


def _photos(tmp_path) -> list[str]:
    """Four shared portraits plus one with its colour channels swapped (orange suit -> blue): five
    inputs whose avatars look clearly different even after a few training steps."""
    photos = sorted(str(p) for p in PORTRAITS.iterdir() if p.suffix.lower() in {".png", ".jpg"})
    swapped = tmp_path / "astronaut-bgr.png"
    rgb = np.asarray(Image.open(PORTRAITS / "astronaut.png").convert("RGB"))
    Image.fromarray(np.ascontiguousarray(rgb[..., ::-1])).save(swapped)
    return photos + [str(swapped)]


def _on_white(portrait) -> np.ndarray:
    """The person over white, as the avatar renders: the backgrounds would otherwise dominate the comparison."""
    alpha = portrait.matte[..., None]
    return np.round(portrait.image * alpha + 255 * (1 - alpha)).astype(np.uint8)


def _small(image) -> np.ndarray:
    image = image if isinstance(image, Image.Image) else Image.open(image)
    return np.asarray(image.convert("RGB").resize((COMPARE_PX, COMPARE_PX), Image.BILINEAR), dtype=np.float32)


def _nearest(images: list[np.ndarray], references: list[np.ndarray]) -> list[int]:
    return [int(np.argmin([np.abs(image - ref).mean() for ref in references])) for image in images]


def test_five_simultaneous_sessions_keep_their_own_outputs(app_server, tmp_path, shots):
    from gradio_client import Client, handle_file

    from perse.config import build_config
    from perse.ingest import ingest

    photos = _photos(tmp_path)
    config = build_config("tiny", overrides=["device=cpu"])
    portraits = [_small(Image.fromarray(_on_white(ingest(photo, config)))) for photo in photos]
    assert _nearest(portraits, portraits) == list(range(5)), "the five inputs must be told apart"

    clients = [Client(app_server.url, verbose=False) for _ in photos]
    returns = clients[0].view_api(return_format="dict", print_info=False)["named_endpoints"]["/run"]["returns"]
    avatar_index = [r["label"] for r in returns].index("Avatar")
    started = time.monotonic()
    jobs = [client.submit(handle_file(photo), ["hair"], "tiny", api_name="/run")
            for client, photo in zip(clients, photos)]
    results = [job.result(timeout=600) for job in jobs]
    elapsed = time.monotonic() - started
    for photo, result in zip(photos, results):
        assert "Avatar ready" in result[0], f"{photo}: {result[0]}\n{app_server.log_tail()}"

    renders = [_small(result[avatar_index]) for result in results]
    Image.fromarray(np.concatenate([np.concatenate(renders, 1), np.concatenate(portraits, 1)]).astype(np.uint8)).save(
        shots / "sessions-renders-vs-portraits.png")
    assert _nearest(renders, portraits) == list(range(5)), "a session was shown another session's avatar"

    # Each session's work folder holds exactly one of the five portraits.
    folders = app_server.sessions()
    assert len(folders) == 5
    on_disk = [_small(folder / "builds" / "001" / "portrait.png") for folder in folders]
    assert sorted(_nearest(on_disk, portraits)) == list(range(5))

    # Edits act on the caller's own avatar, even when everyone edits at once: hair to value 1 changes
    # the render, back to 0 (the photo's own code) gives exactly that session's first render again.
    full = [np.asarray(Image.open(result[avatar_index]).convert("RGB"), dtype=np.float32) for result in results]
    for position, same in ((1.0, False), (0.0, True)):
        jobs = [client.submit(position, 0, 0, 0, 0, 0, 0, api_name="/slide_hair") for client in clients]
        edited = [np.asarray(Image.open(job.result(timeout=120)).convert("RGB"), dtype=np.float32) for job in jobs]
        for i, image in enumerate(edited):
            distances = [np.abs(image - render).mean() for render in full]
            if same:
                assert distances[i] < 0.5 and int(np.argmin(distances)) == i, f"session {i}: {distances}"
            else:
                assert distances[i] > 0.5, f"session {i}: moving the hair slider left the render unchanged"
    print(f"\nfive simultaneous runs finished in {elapsed:.0f} s")
