"""Event handlers of the app, free of layout: each returns (or yields) {output name: value}; app.py
maps names onto its components. Every failure a visitor can act on reaches them as a message, never
as a traceback.
"""
from __future__ import annotations

import functools
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr

from perse.app import studio
from perse.app.progress import RunView, loss_figure
from perse.app.session import Session, SessionRoot
from perse.config import PRESETS, PipelineConfig, build_config
from perse.dataset import EXPRESSION_NAMES
from perse.errors import Cancelled, PerseError
from perse.synth.catalog import CATALOG

log = logging.getLogger("perse.app")

# The pre-built slider rows, one per catalog category; a run shows the rows of the categories it trained.
CATEGORY_SLOTS = tuple(CATALOG)
EXPRESSIONS = tuple(EXPRESSION_NAMES)
NO_AVATAR = "Build an avatar first: upload a portrait and press Run."


def _env_int(name: str, default: int, environ) -> int:
    raw = environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise PerseError(f"environment variable {name}={raw!r} must be a whole number") from None


@dataclass
class Settings:
    """Deployment knobs, read from the environment (see docs/space.md)."""

    gpu: bool
    # Extra config overrides for every run ("section.key=value"), e.g. fewer steps on a slow machine.
    overrides: list[str] = field(default_factory=list)
    run_concurrency: int = 1
    render_concurrency: int = 4
    queue_size: int = 32

    @classmethod
    def from_env(cls, environ=os.environ) -> "Settings":
        import spaces.config
        import torch

        gpu = torch.cuda.is_available() or bool(spaces.config.Config.zero_gpu)
        if environ.get("PERSE_DEVICE") == "cpu":
            gpu = False
        return cls(
            gpu=gpu,
            overrides=[item.strip() for item in environ.get("PERSE_APP_OVERRIDES", "").split(";") if item.strip()],
            run_concurrency=_env_int("PERSE_RUN_CONCURRENCY", 1, environ),
            render_concurrency=_env_int("PERSE_RENDER_CONCURRENCY", 4, environ),
            queue_size=_env_int("PERSE_QUEUE_SIZE", 32, environ),
        )

    @property
    def presets(self) -> list[str]:
        return list(PRESETS) if self.gpu else ["tiny"]

    @property
    def default_preset(self) -> str:
        return "fast" if self.gpu else "tiny"

    @property
    def notice(self) -> str:
        if self.gpu:
            return ""
        return ("**No GPU on this machine: running on the CPU with the `tiny` preset** (64 px, a few hundred "
                "training steps). Expect a blurry toy avatar after a minute or two; on a GPU Space the `fast` "
                "preset builds a 512 px avatar in about two minutes.")


def _view(yaw: float, pitch: float, *expression: float) -> studio.View:
    return studio.View(float(yaw), float(pitch), {name: float(v) for name, v in zip(EXPRESSIONS, expression)})


def _user_message(exc: PerseError, *paths: str | None) -> str:
    """The error text with server-side temp paths shortened to the visitor's file names."""
    message = str(exc)
    for path in paths:
        if path:
            message = message.replace(str(path), Path(path).name)
    return message


def avatar_call(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """For handlers acting on a trained avatar: no avatar -> a hint; PerseError -> a warning toast;
    anything else -> a generic error (details go to the server log)."""

    @functools.wraps(fn)
    def wrapper(self: "Handlers", session: Session | None, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if session is None or session.latent is None:
            gr.Info(NO_AVATAR)
            return {}
        try:
            return fn(self, session, *args, **kwargs)
        except PerseError as exc:
            gr.Warning(_user_message(exc, *[a for a in args if isinstance(a, str) and os.path.isfile(a)]))
            return {}
        except Exception as exc:
            log.exception("avatar call %s failed", fn.__name__)
            raise gr.Error("Something went wrong on the server; the details are in its log. Please try again.") from exc

    return wrapper


def _megabytes(path: str) -> str:
    return f"{os.path.getsize(path) / 1e6:.1f} MB"


class Handlers:
    def __init__(self, root: SessionRoot, settings: Settings):
        self.root = root
        self.settings = settings

    # -- sessions -------------------------------------------------------------------------------
    def forget(self, session: Session | None) -> None:
        """gr.State's delete_callback and the page-unload hook: the session's folder and avatar go."""
        if session is not None:
            studio.AVATARS.drop(session.run_dir)
            self.root.close(session)

    def unload(self, request: gr.Request) -> None:
        if request is not None and request.session_hash:
            session = self.root.find(request.session_hash)
            self.forget(session)

    # -- the build ------------------------------------------------------------------------------
    def _config(self, categories: list[str], preset: str):
        overrides = [f"synth.categories={','.join(categories)}"]
        if not self.settings.gpu:
            overrides.append("device=cpu")
        return build_config(preset, overrides=overrides + self.settings.overrides)

    def run(self, photo: str | None, categories: list[str] | None, preset: str, session: Session | None,
            request: gr.Request) -> Iterator[dict[str, Any]]:
        session = session or self.root.open(request.session_hash if request else None)
        if not photo:
            gr.Warning("Upload a portrait (or click one of the examples) first.")
            yield {"session": session, "status": "Waiting for a portrait."}
            return
        if not categories:
            gr.Warning("Pick at least one attribute category to make editable.")
            yield {"session": session, "status": "Pick at least one attribute category."}
            return
        notes = []
        if preset not in self.settings.presets:
            notes.append(f"preset `{preset}` needs a GPU; using `tiny`")
            preset = "tiny"
        try:
            config = self._config(list(categories), preset)
        except PerseError as exc:
            gr.Warning(str(exc))
            yield {"session": session, "status": f"**Settings problem.** {exc}"}
            return
        if not session.building.acquire(blocking=False):
            gr.Warning("A build is already running in this session; wait for it or press Cancel.")
            yield {"status": "A build is already running in this session."}
            return
        try:
            yield from self._build(photo, config, notes, session)
        finally:
            session.building.release()

    def _build(self, photo: str, config: PipelineConfig, notes: list[str], session: Session) -> Iterator[dict[str, Any]]:
        studio.AVATARS.drop(session.run_dir)
        session.latent = session.avatar = None
        session.cancel.reset()
        yield {"session": session, "studio": gr.update(visible=False), "report": gr.update(visible=False),
               "ingest": None, "gallery": [],
               "losses": None, "preview": None, "status": "Starting" + (f" ({'; '.join(notes)})" if notes else "")}
        view = RunView()
        start = time.perf_counter()
        try:
            for event in studio.pipeline_events(photo, str(session.run_dir), config, session.cancel):
                view.update(event)
                out: dict[str, Any] = {"status": f"{view.status_markdown()}  \n*{time.perf_counter() - start:.0f} s*"}
                if "ingest" in view.changed:
                    out["ingest"] = view.ingest_image
                if "gallery" in view.changed:
                    out["gallery"] = list(view.gallery)
                if "losses" in view.changed:
                    out["losses"] = loss_figure(view.losses)
                if "preview" in view.changed:
                    out["preview"] = view.preview
                yield out
            info, latent, image = studio.open_avatar(str(session.run_dir), studio.View())
        except Cancelled as exc:
            yield {"status": f"**Stopped.** {exc}. Press Run to continue from there."}
            return
        except PerseError as exc:
            message = _user_message(exc, photo)
            gr.Warning(message)
            yield {"status": f"**Could not build an avatar from this photo.** {message}"}
            return
        except Exception:
            log.exception("run failed for session %s", session.id)
            gr.Warning("Something went wrong on the server; the details are in its log.")
            yield {"status": "**Something went wrong on the server.** The details are in its log; please try again."}
            return
        session.avatar, session.latent = info, latent
        elapsed = time.perf_counter() - start
        yield {"status": f"**Avatar ready** in {elapsed:.0f} s ({info.num_gaussians} Gaussians, "
                         f"{len(info.categories)} editable categories). {view.summary}",
               "view": image, "report": gr.update(value=view.report, visible=view.report is not None),
               **self._studio_updates(info)}

    def _studio_updates(self, info: studio.AvatarInfo) -> dict[str, Any]:
        out: dict[str, Any] = {"studio": gr.update(visible=True)}
        for category in CATEGORY_SLOTS:
            labels = info.categories.get(category)
            out[f"row:{category}"] = gr.update(visible=labels is not None)
            if labels is not None:
                out[f"slider:{category}"] = gr.update(
                    minimum=0, maximum=len(labels) - 1, value=0,
                    info=" · ".join(f"{i}: {label}" for i, label in enumerate(labels)))
        trained = list(info.categories)
        first = info.categories[trained[0]]
        out.update({
            "clip_category": gr.update(choices=trained, value=trained[0]),
            "clip_start": gr.update(maximum=len(first) - 1, value=0),
            "clip_end": gr.update(maximum=len(first) - 1, value=len(first) - 1),
            "clip_frames": gr.update(value=info.interp_frames),
            "transfer_category": gr.update(choices=trained, value=trained[0]),
            "yaw": 0, "pitch": 0, **{f"expr:{name}": 0 for name in EXPRESSIONS},
        })
        return out

    def cancel(self, session: Session | None) -> dict[str, Any]:
        if session is None:
            return {}
        session.cancel.cancel()
        return {"status": "Stopping at the next checkpoint…"}

    # -- playing with the avatar ----------------------------------------------------------------
    def _edit(self, session: Session, view: studio.View, op: str, category: str | None = None,
              value: float = 0.0) -> dict[str, Any]:
        session.latent, image = studio.edit(str(session.run_dir), session.latent, view, op, category, value)
        return {"view": image}

    @avatar_call
    def slide(self, session: Session, position: float, *view: float, category: str) -> dict[str, Any]:
        return self._edit(session, _view(*view), "slider", category, position)

    @avatar_call
    def rerender(self, session: Session, *view: float) -> dict[str, Any]:
        return self._edit(session, _view(*view), "render")

    @avatar_call
    def randomize(self, session: Session, *view: float, category: str | None = None) -> dict[str, Any]:
        seed = secrets.randbits(31)
        out = self._edit(session, _view(*view), "sample", category, seed)
        gr.Info(f"Random {category or 'look'} (seed {seed}).")
        return out

    @avatar_call
    def reset(self, session: Session, *view: float) -> dict[str, Any]:
        out = self._edit(session, _view(*view), "reset")
        out.update({f"slider:{c}": 0 for c in session.avatar.categories})
        return out

    @avatar_call
    def transfer(self, session: Session, photo: str | None, category: str, *view: float) -> dict[str, Any]:
        if not photo:
            gr.Warning("Upload the photo to take the attribute from.")
            return {}
        session.latent, image = studio.transfer(str(session.run_dir), session.latent, photo, category, _view(*view))
        return {"view": image}

    @avatar_call
    def clip_range(self, session: Session, category: str) -> dict[str, Any]:
        last = len(session.avatar.categories[category]) - 1
        return {"clip_start": gr.update(maximum=last, value=0), "clip_end": gr.update(maximum=last, value=last)}

    @avatar_call
    def clip(self, session: Session, category: str, start: float, end: float, frames: float, kind: str,
             *view: float) -> dict[str, Any]:
        suffix = ".gif" if kind == "GIF" else ".mp4"
        out = session.output_path(f"{category}-interpolation", suffix)
        path = studio.interpolation_clip(str(session.run_dir), session.latent, category, start, end,
                                         int(frames), _view(*view), str(out))
        return {"clip_gif": gr.update(value=path if suffix == ".gif" else None, visible=suffix == ".gif"),
                "clip_video": gr.update(value=path if suffix == ".mp4" else None, visible=suffix == ".mp4"),
                "clip_download": gr.update(value=path, visible=True, label=f"Download {Path(path).name} "
                                                                          f"({_megabytes(path)})")}

    @avatar_call
    def ply(self, session: Session, *view: float) -> dict[str, Any]:
        path, count = studio.export_ply(str(session.run_dir), session.latent, _view(*view),
                                        str(session.output_path("avatar", ".ply")), None)
        return {"ply_download": gr.update(value=path, visible=True,
                                          label=f"Download avatar.ply ({count} Gaussians, {_megabytes(path)})")}

    @avatar_call
    def show_3d(self, session: Session, *view: float) -> dict[str, Any]:
        cap = session.avatar.web_ply_max_gaussians
        path, count = studio.export_ply(str(session.run_dir), session.latent, _view(*view),
                                        str(session.output_path("avatar-web", ".ply")), cap)
        kept = "all" if count == session.avatar.num_gaussians else f"the {count} most opaque of {session.avatar.num_gaussians}"
        return {"model3d": path,
                "model3d_info": f"{count} Gaussians ({kept}), {_megabytes(path)}. Drag to orbit, scroll to zoom."}

