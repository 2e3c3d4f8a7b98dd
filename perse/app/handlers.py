"""Event handlers of the app, free of layout: each returns (or yields) {output name: value}; app.py
maps names onto its components. Every failure a visitor can act on reaches them as a message, never
as a traceback.
"""
from __future__ import annotations

import functools
import logging
import math
import os
import secrets
import threading
from html import escape
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlencode

import gradio as gr
import numpy as np
from PIL import Image

from perse.app import studio
from perse.app.builds import Build, shorten_paths
from perse.app.progress import loss_figure, stage_weights
from perse.app.session import Session, SessionRoot
from perse.config import PRESETS, build_config
from perse.dataset import EXPRESSION_NAMES
from perse.errors import PerseError
from perse.ingest.load import load_photo
from perse.synth.catalog import CATALOG

log = logging.getLogger("perse.app")

# The pre-built slider rows, one per catalog category; a run shows the rows of the categories it trained.
CATEGORY_SLOTS = tuple(CATALOG)
EXPRESSIONS = tuple(EXPRESSION_NAMES)
NO_AVATAR = "Build an avatar first: upload a portrait and press Run."
# A page watching a build hears from it at least this often (the elapsed time ticks), and each time
# stamps the build as watched: a build whose page is gone stops being stamped and is cancelled.
HEARTBEAT_S = 2.0
PREVIEW_SIZE = 512


def _env_number(name: str, default: float, environ, kind: type = int) -> Any:
    raw = environ.get(name, "")
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw) if raw else default
    except ValueError:
        raise PerseError(f"environment variable {name}={raw!r} must be {what} greater than 0") from None
    if not math.isfinite(value) or value <= 0:
        raise PerseError(f"environment variable {name}={raw!r} must be {what} greater than 0")
    return value


@dataclass
class Settings:
    """Deployment knobs, read from the environment (see docs/space.md)."""

    gpu: bool
    # Extra config overrides for every run ("section.key=value"), e.g. fewer steps on a slow machine.
    overrides: list[str] = field(default_factory=list)
    run_concurrency: int = 1
    render_concurrency: int = 4
    queue_size: int = 32
    # Storage policy (docs/storage.md): how long a session's avatars are kept after its last activity,
    # how long a build may go unwatched before it is cancelled, and the largest upload accepted.
    session_hours: float = 24.0
    orphan_s: float = 120.0
    max_upload_mb: float = 25.0

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
            run_concurrency=_env_number("PERSE_RUN_CONCURRENCY", 1, environ),
            render_concurrency=_env_number("PERSE_RENDER_CONCURRENCY", 4, environ),
            queue_size=_env_number("PERSE_QUEUE_SIZE", 32, environ),
            session_hours=_env_number("PERSE_SESSION_HOURS", 24.0, environ, float),
            orphan_s=_env_number("PERSE_ORPHAN_SECONDS", 120.0, environ, float),
            max_upload_mb=_env_number("PERSE_MAX_UPLOAD_MB", 25.0, environ, float),
        )

    @property
    def session_ttl_s(self) -> float:
        return self.session_hours * 3600

    @property
    def sweep_interval_s(self) -> float:
        """How often expired sessions and unwatched builds are looked for: a fraction of either limit."""
        return max(1.0, min(60.0, self.session_ttl_s / 4, self.orphan_s / 4))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1e6)

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


def avatar_call(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """For handlers acting on a trained avatar: no avatar -> a hint; PerseError -> a warning toast;
    anything else -> a generic error (details go to the server log). Outputs a handler leaves out keep
    their value (app.py fills them with gr.skip())."""

    @functools.wraps(fn)
    def wrapper(self: "Handlers", session: Session | None, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if session is None or session.closed or session.current is None:
            gr.Info(NO_AVATAR)
            return {}
        self.root.touch(session)
        try:
            with session.in_use():
                return fn(self, session, *args, **kwargs)
        except PerseError as exc:
            gr.Warning(shorten_paths(str(exc), *[a for a in args if isinstance(a, str) and os.path.isfile(a)]))
            return {}
        except Exception as exc:
            log.exception("avatar call %s failed", fn.__name__)
            raise gr.Error("Something went wrong on the server; the details are in its log. Please try again.") from exc
        finally:
            # Idle time counts from the end of a call: a long export must not expire its own session.
            self.root.touch(session)

    return wrapper


def file_size(path_or_bytes: str | Path | int) -> str:
    size = path_or_bytes if isinstance(path_or_bytes, int) else os.path.getsize(path_or_bytes)
    if size < 1e3:
        return f"{size} bytes"
    if size < 1e6:
        return f"{size / 1e3:.0f} KB"
    return f"{size / 1e6:.1f} MB"


def _thumbnail(rgb: np.ndarray) -> np.ndarray:
    image = Image.fromarray(rgb)
    image.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
    return np.asarray(image)


class Handlers:
    def __init__(self, root: SessionRoot, settings: Settings):
        self.root = root
        self.settings = settings
        # Bounds the builds running at once (PERSE_RUN_CONCURRENCY), also those whose page was reloaded.
        self.slots = threading.BoundedSemaphore(settings.run_concurrency)

    # -- sessions -------------------------------------------------------------------------------
    def _session(self, session: Session | None, request: gr.Request | None) -> Session:
        """The page's session; an API client (no page load) gets one keyed by its gradio session hash."""
        if session is not None and not session.closed:
            self.root.touch(session)
            return session
        hash_ = getattr(request, "session_hash", None)
        return self.root.open(f"api:{hash_}" if hash_ else None)

    def restore(self, token: str | None, request: gr.Request) -> Iterator[dict[str, Any]]:
        """Page load: the browser's token finds its session again (a reload keeps the avatars and
        reattaches to a build under way); an unknown token starts a new session and a new token."""
        session = self.root.open(token if isinstance(token, str) else None)
        running = session.running()
        out: dict[str, Any] = {"token": session.key, "session": session, "builds": self._builds_menu(session),
                               "cancel": gr.update(interactive=running is not None)}
        with session.lock:
            current = session.current
        if current is not None:
            out.update(self._show(session, current))
            out["status"] = f"**Welcome back.** Your avatar {current.label()} is below."
        yield out if running is not None or current is None else {**out, **self._panels(current)}
        if running is not None:
            # The run panels show the build under way, not the avatar's own build.
            yield from self._watch(session, running, replay=False)

    def _builds_menu(self, session: Session | None) -> Any:
        ready = session.ready() if session is not None else []
        current = session.current if session is not None else None
        return gr.update(choices=[(build.label(), build.number) for build in ready],
                         value=current.number if current is not None else None, visible=bool(ready))

    def choose(self, session: Session | None, number: Any) -> dict[str, Any]:
        """Show another of the session's avatars in the studio."""
        build = session.find_build(number) if session is not None and not session.closed else None
        if build is None:
            gr.Info(NO_AVATAR if session is None or not session.ready() else "That avatar is no longer kept.")
            return {"builds": self._builds_menu(session)}
        self.root.touch(session)
        return {"status": f"Showing avatar {build.label()}.", **self._show(session, build), **self._panels(build)}

    @staticmethod
    def _panels(build: Build) -> dict[str, Any]:
        """What the build showed while it ran (aligned portrait, clips, losses, last render)."""
        snap = build.snapshot()
        return {"ingest": snap["ingest"], "gallery": snap["gallery"], "preview": snap["preview"],
                "losses": loss_figure(snap["losses"]) if snap["losses"] else None}

    def _show(self, session: Session, build: Build) -> dict[str, Any]:
        """Make `build` the studio's avatar, at the photo's own look, front view."""
        with session.lock:
            session.current = build
            build.look = build.source
        return {"view": build.image, "report": gr.update(value=build.view.report, visible=build.view.report is not None),
                "builds": self._builds_menu(session), **self._studio_updates(build.info)}

    # -- the build ------------------------------------------------------------------------------
    def _config(self, categories: list[str], preset: str):
        overrides = [f"synth.categories={','.join(categories)}"]
        # On a GPU a draft avatar is ready in seconds, long before the full one; on a CPU (`tiny`) the
        # whole run is about as small as a draft.
        overrides.append(f"draft.enabled={self.settings.gpu}")
        if not self.settings.gpu:
            overrides.append("device=cpu")
        return build_config(preset, overrides=overrides + self.settings.overrides)

    def check_photo(self, photo: str | None) -> dict[str, Any]:
        """On upload: the ingest stage's own checks (format, size, decompression bombs) and a preview."""
        if not photo:
            return {"photo_preview": None}
        limits = build_config(self.settings.default_preset, overrides=self.settings.overrides).ingest
        try:
            loaded = load_photo(photo, limits.max_megapixels, limits.min_side)
        except PerseError as exc:
            message = shorten_paths(str(exc), photo)
            gr.Warning(message)
            return {"photo_preview": None, "status": f"**This photo cannot be used.** {message}"}
        width, height = loaded.size
        return {"photo_preview": _thumbnail(loaded.rgb),
                "status": f"{Path(photo).name}: {width}x{height} pixels. Choose the attributes and press **Run**."}

    def run(self, photo: str | None, categories: list[str] | None, preset: str, session: Session | None,
            request: gr.Request) -> Iterator[dict[str, Any]]:
        session = self._session(session, request)
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
        with session.lock:
            if session.running() is not None:
                gr.Warning("A build is already running in this session; wait for it or press Cancel.")
                yield {"session": session, "status": "A build is already running in this session."}
                return
            number, folder = session.next_build()
            build = Build(number, folder, photo, config, clock=self.root.clock,
                          weights=stage_weights(config.avatar.steps, self.settings.gpu, config.draft.enabled))
            session.builds.append(build)
        build.start(self.slots, on_avatar=functools.partial(self._on_avatar, session),
                    on_end=functools.partial(self._on_end, session))
        yield {"session": session, "report": gr.update(visible=False), "ingest": None, "gallery": [], "losses": None,
               "preview": None, "cancel": gr.update(interactive=True),
               "status": "Starting" + (f" ({'; '.join(notes)})" if notes else "")}
        yield from self._watch(session, build)

    @staticmethod
    def _on_avatar(session: Session, build: Build) -> None:
        """The build's first avatar (its draft, or the finished one when there is none) takes over the
        studio, and so does the finished one; checkpoints in between only update it while it is shown."""
        with session.lock:
            if not build.took_studio:
                build.took_studio, build.replaced, session.current = True, session.current, build
            elif build.avatar_name == "finished":
                session.current = build

    @staticmethod
    def _on_end(session: Session, build: Build) -> None:
        """A build that stopped or failed gives the studio back to the avatar it showed before (its draft's
        folder is kept: Run again resumes, draft included)."""
        with session.lock:
            if build.state != "ready" and session.current is build:
                session.current = build.replaced

    def _watch(self, session: Session, build: Build, replay: bool = True) -> Iterator[dict[str, Any]]:
        """Stream a build's progress to one page, from whatever it has already shown (nothing, on a reload).
        With `replay`, every event's status is shown (an API client reads each stage's message), else a
        reattached page starts from the latest."""
        shown: dict[str, Any] = {}
        version = -1
        heard = 0 if replay else len(build.snapshot()["statuses"])
        while True:
            build.watched_at = self.root.clock()
            self.root.touch(session)
            version = build.wait(version, HEARTBEAT_S)
            snap = build.snapshot()
            missed, heard = snap["statuses"][heard:-1], max(heard, len(snap["statuses"]))
            for status in missed:
                yield {"status": f"{status}  \n*{build.elapsed:.0f} s*"}
            out: dict[str, Any] = {}
            if snap["state"] == "queued":
                out["status"] = "**Waiting for a free slot**: other avatars are being built; yours starts after them."
            elif snap["state"] == "running":
                out["status"] = f"{snap['status'] or 'Starting'}  \n*{build.elapsed:.0f} s*"
                if snap["avatar_name"] and session.current is build:
                    out["status"] += (f"  \nThe studio below shows the avatar so far ({snap['avatar_name']}): sliders "
                                      "and pose work now, and it improves as training goes on.")
                if snap["layout"] != shown.get("layout", 0) and session.current is build:
                    shown["layout"] = snap["layout"]
                    out.update(self._show(session, build))
            for name in ("ingest", "preview"):
                if snap[name] != shown.get(name):
                    out[name] = shown[name] = snap[name]
            # A fresh page (or one Run just cleared) shows no clips and no chart: only news is sent.
            if len(snap["gallery"]) != shown.get("gallery", 0):
                out["gallery"], shown["gallery"] = snap["gallery"], len(snap["gallery"])
            if len(snap["losses"]) != shown.get("losses", 0):
                out["losses"], shown["losses"] = loss_figure(snap["losses"]), len(snap["losses"])
            if snap["state"] in ("queued", "running"):
                yield out
                continue
            out.update(self._finished(session, build))
            yield out
            return

    def _finished(self, session: Session, build: Build) -> dict[str, Any]:
        out: dict[str, Any] = {"status": build.outcome, "cancel": gr.update(interactive=False),
                               "builds": self._builds_menu(session)}
        if build.warning:
            gr.Warning(build.warning)
        if build.state == "ready":
            out.update(self._show(session, build))
        elif session.current is not None:
            out["status"] += f"  \nYour avatar {session.current.label()} is kept: the studio below still shows it."
            out.update(self._panels(session.current))
        return out

    def cancel(self, session: Session | None) -> dict[str, Any]:
        build = session.running() if session is not None else None
        if build is None:
            gr.Info("No build is running.")
            return {}
        build.cancel.cancel()
        return {"status": "Stopping at the next checkpoint…"}

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
            **self._front_view(),
        })
        return out

    @staticmethod
    def _front_view() -> dict[str, Any]:
        return {"yaw": 0, "pitch": 0, **{f"expr:{name}": 0 for name in EXPRESSIONS}}

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
        """A look drawn from the learned prior; the sliders move to the nearest positions they can show."""
        seed = secrets.randbits(31)
        out = self._edit(session, _view(*view), "sample", category, seed)
        positions = studio.slider_positions(str(session.run_dir), session.latent)
        out.update({f"slider:{name}": round(position, 2) for name, position in positions.items()
                    if category in (None, name)})
        gr.Info(f"Random {category or 'look'} (seed {seed}).")
        return out

    @avatar_call
    def reset(self, session: Session) -> dict[str, Any]:
        """Back to the photo's own look, seen from the front with a neutral expression."""
        out = self._edit(session, studio.View(), "reset")
        out.update({f"slider:{c}": 0 for c in session.avatar.categories}, **self._front_view())
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
        if category not in session.avatar.categories:
            return {}
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
                "clip_download": gr.update(value=path, visible=True,
                                           label=f"Download {Path(path).name} ({file_size(path)})")}

    @avatar_call
    def export_look(self, session: Session, kind: str, *view: float) -> dict[str, Any]:
        """The current look as a .ply or .splat download (`kind`), named with its count and size."""
        suffix = kind.lower() if kind.startswith(".") else f".{kind.lower()}"
        if suffix not in studio.BYTES_PER_GAUSSIAN:
            raise PerseError(f"choose a format to export: {', '.join(studio.BYTES_PER_GAUSSIAN)}")
        path, count = studio.export_look(str(session.run_dir), session.latent, _view(*view),
                                         str(session.output_path("avatar", suffix)))
        return {"look_download": gr.update(value=path, visible=True,
                                           label=f"Download {Path(path).name} ({count} Gaussians, {file_size(path)})")}

    @avatar_call
    def viewer_3d(self, session: Session, *view: float) -> dict[str, Any]:
        """The in-browser viewer (perse/export/web) at the studio's current look and view: after this call
        orbiting and every slider run in the visitor's browser, without the server."""
        folder, archive = studio.web_bundle(str(session.run_dir), str(session.folder / "web" / f"{session.current.number:03d}"))
        positions = studio.slider_positions(str(session.run_dir), session.latent)
        view_now = _view(*view)
        query = urlencode({"look": ",".join(f"{name}:{value:.3f}" for name, value in positions.items()),
                           "expression": ",".join(f"{name}:{value:.3f}" for name, value in view_now.expression.items()
                                                  if value),
                           "yaw": f"{view_now.yaw:g}", "pitch": f"{view_now.pitch:g}"}, safe=":,")
        # Relative to the page, so the viewer also loads when the app is served under a path prefix.
        src = f"gradio_api/file={quote(folder)}/index.html?{query}"
        count = session.avatar.num_gaussians
        sizes = ", ".join(f"{suffix} {file_size(count * size)}" for suffix, size in studio.BYTES_PER_GAUSSIAN.items())
        return {"viewer": f'<iframe id="viewer-frame" src="{escape(src)}" title="3D avatar viewer" '
                          'style="width:100%;height:720px;border:0"></iframe>',
                "viewer_info": (f"{count} Gaussians, decoded in your browser: drag to orbit, wheel to zoom; the "
                                f"sliders there change the 3D avatar without a server call. Downloads of the "
                                f"current look: {sizes}; the viewer as a web page: {file_size(archive)}."),
                "bundle_download": gr.update(value=archive, visible=True,
                                             label=f"Download the viewer as a web page ({file_size(archive)}, .zip)")}
