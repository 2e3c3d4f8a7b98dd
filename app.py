"""PERSE Studio web app: one portrait -> an editable 3D Gaussian head avatar, in the browser.

Layout and wiring only; the work is in perse/app/ (handlers, GPU calls, sessions) and the pipeline.
Run `python app.py` (serves on 0.0.0.0:7860; PORT / GRADIO_SERVER_NAME override) or import `build`.
Deployment settings come from the environment: see docs/space.md.
"""
from __future__ import annotations

import functools
import inspect
import os
import signal
from pathlib import Path
from typing import Any, Callable

# On a ZeroGPU Space, spaces must patch torch before anything imports it.
import spaces  # isort: skip
import gradio as gr

from perse.app.drive import TRACKING, DriveTab
from perse.app.handlers import CATEGORY_SLOTS, EXPRESSIONS, Handlers, Settings
from perse.app.session import SessionRoot
from perse.config import PRESETS, build_config
from perse.core.render import warm_up
from perse.drive.track import start_tracking
from perse.synth.animate.motion import MAX_PITCH, MAX_YAW
from perse.synth.catalog import CATALOG

ASSETS = Path(__file__).resolve().parent / "assets"
EXAMPLES = sorted(str(p) for p in ASSETS.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
CSS = """
#avatar-view img { image-rendering: auto; }
.dice { max-width: 6em; min-width: 6em !important; }
"""


def _named(fn: Callable, ui: dict[str, Any], names: list[str]) -> tuple[Callable, list[Any]]:
    """Handlers return {name: value} for what they change; gradio wants a value for every output component
    (an empty dict fails in its postprocess), so the others get gr.skip(). Keeps fn's signature (gr.Request)."""
    components = [ui[name] for name in names]

    def convert(result: dict[str, Any]) -> dict[Any, Any]:
        unknown = set(result) - set(names)
        if unknown:
            raise KeyError(f"a handler returned outputs it is not wired to: {sorted(unknown)} (wired: {names})")
        return {ui[name]: result.get(name, gr.skip()) for name in names}

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def stream(*args: Any) -> Any:
            for result in fn(*args):
                yield convert(result)
        return stream, components

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        return convert(fn(*args) or {})
    return call, components


def build(handlers: Handlers) -> gr.Blocks:
    settings = handlers.settings
    ui: dict[str, Any] = {}

    def on(trigger: Callable, fn: Callable, inputs: list[Any], outputs: list[str], **kwargs: Any) -> Any:
        wrapped, components = _named(fn, ui, outputs)
        return trigger(wrapped, inputs=inputs, outputs=components, **kwargs)

    def default_categories(preset: str) -> list[str]:
        return list(build_config(preset, overrides=settings.overrides).synth.categories)

    # Gradio's upload and output cache lives in this process's root (swept with it); a cached copy is
    # removed once it is as old as the session grace period, so it never outlives its session.
    os.environ["GRADIO_TEMP_DIR"] = str(handlers.root.cache_dir)
    sweep_every = max(1, round(settings.sweep_interval_s))
    with gr.Blocks(title="PERSE Studio", delete_cache=(sweep_every, round(settings.session_ttl_s))) as demo:
        # The browser's key to its session: a reload (or a closed and reopened tab) finds its avatars again.
        token = ui["token"] = gr.BrowserState(None, storage_key="perse-studio-session")
        session = ui["session"] = gr.State(None)
        gr.Markdown("# PERSE Studio\nOne portrait in, a 3D head avatar out, with a slider for every attribute. "
                    "Upload a photo (or pick an example), choose what should be editable, press **Run**.")
        if settings.notice:
            gr.Markdown(settings.notice, elem_id="cpu-notice")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                # A file, not gr.Image: every upload reaches the ingest stage's checks and messages
                # (gr.Image would refuse a damaged or odd file in the browser with no explanation).
                photo = gr.File(label="Portrait (JPEG, PNG, WebP, BMP or TIFF)", type="filepath", height=90,
                                elem_id="photo")
                ui["photo_preview"] = gr.Image(label="Your photo", interactive=False, height=240,
                                               elem_id="photo-preview", buttons=[])
                gr.Examples(EXAMPLES, inputs=photo, label="Public-domain examples")
                categories = gr.CheckboxGroup(list(CATALOG), value=default_categories(settings.default_preset),
                                              label="Editable attributes", elem_id="categories")
                preset = gr.Radio(list(PRESETS), value=settings.default_preset, label="Preset",
                                  interactive=len(settings.presets) > 1, elem_id="preset",
                                  info="tiny: CPU toy, 64 px · fast: 512 px, ~2 min on a GPU · quality: longer")
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="run")
                    cancel = ui["cancel"] = gr.Button("Cancel", variant="stop", interactive=False, elem_id="cancel")
            with gr.Column(scale=2):
                ui["status"] = gr.Markdown("Waiting for a portrait.", label="Status", elem_id="status")
                ui["builds"] = gr.Dropdown([], label="Your avatars (kept for this browser; pick one to show it)",
                                           visible=False, interactive=True, elem_id="builds")
                ui["report"] = gr.DownloadButton("Quality report (HTML)", visible=False, size="sm", elem_id="report")
                with gr.Row():
                    ui["ingest"] = gr.Image(label="Portrait as the pipeline sees it (landmarks, regions)",
                                            interactive=False, height=256, elem_id="ingest")
                    ui["preview"] = gr.Image(label="Renders (training: render | target; then random samples)",
                                             interactive=False,
                                             height=256, elem_id="preview")
                ui["gallery"] = gr.Gallery(label="Synthesized attribute clips", columns=6, height=220,
                                           elem_id="gallery")
                ui["losses"] = gr.Plot(label="Training losses", elem_id="losses")

        with gr.Column(visible=False, elem_id="studio") as ui["studio"]:
            gr.Markdown("## Play with your avatar")
            with gr.Row():
                with gr.Column(scale=1):
                    ui["view"] = gr.Image(label="Avatar", interactive=False, height=384, elem_id="avatar-view")
                    # The range the synthetic clips train (perse.synth.animate.motion): beyond it a head is guessed.
                    ui["yaw"] = gr.Slider(-MAX_YAW, MAX_YAW, value=0, step=1, label="Yaw (degrees)", elem_id="yaw")
                    ui["pitch"] = gr.Slider(-MAX_PITCH, MAX_PITCH, value=0, step=1, label="Pitch (degrees)",
                                            elem_id="pitch")
                    with gr.Accordion("Expression", open=False, elem_id="expressions"):
                        for name in EXPRESSIONS:
                            ui[f"expr:{name}"] = gr.Slider(0, 1, value=0, step=0.05, label=name,
                                                           elem_id=f"expr-{name}")
                with gr.Column(scale=1):
                    for category in CATEGORY_SLOTS:
                        with gr.Row(visible=False, equal_height=True) as ui[f"row:{category}"]:
                            ui[f"slider:{category}"] = gr.Slider(0, 1, value=0, step=0.01, label=category,
                                                                 elem_id=f"slider-{category}", scale=8)
                            ui[f"dice:{category}"] = gr.Button("Random", elem_classes="dice", scale=1, size="sm",
                                                               elem_id=f"dice-{category}")
                    with gr.Row():
                        random_all = gr.Button("Random look", elem_id="random-all")
                        reset = gr.Button("Reset to the photo", elem_id="reset")
            with gr.Tabs():
                with gr.Tab("Interpolation clip", elem_id="tab-clip"):
                    with gr.Row():
                        ui["clip_category"] = gr.Dropdown(list(CATEGORY_SLOTS), label="Attribute", elem_id="clip-category")
                        ui["clip_start"] = gr.Slider(0, 1, value=0, step=0.01, label="From", elem_id="clip-start")
                        ui["clip_end"] = gr.Slider(0, 1, value=1, step=0.01, label="To", elem_id="clip-end")
                        ui["clip_frames"] = gr.Slider(4, 96, value=24, step=1, label="Frames each way",
                                                      elem_id="clip-frames")
                        clip_kind = gr.Radio(["GIF", "MP4"], value="GIF", label="Format", elem_id="clip-kind")
                    build_clip = gr.Button("Build clip", elem_id="build-clip")
                    ui["clip_gif"] = gr.Image(label="Clip", interactive=False, height=320, elem_id="clip-gif")
                    ui["clip_video"] = gr.Video(label="Clip", interactive=False, visible=False, loop=True,
                                                autoplay=True, height=320, width=320, elem_id="clip-video")
                    ui["clip_download"] = gr.DownloadButton("Download clip", visible=False, elem_id="clip-download")
                with gr.Tab("3D in your browser", elem_id="tab-3d") as tab_3d:
                    # The avatar's web bundle in an iframe (perse/export/web): orbiting and its sliders run
                    # in the browser. It opens at the studio's look; the button re-opens it after changes.
                    ui["viewer_info"] = gr.Markdown(elem_id="viewer-info")
                    show_3d = gr.Button("Open the studio's current look in 3D", size="sm", elem_id="show-3d")
                    ui["viewer"] = gr.HTML(elem_id="viewer")
                    ui["bundle_download"] = gr.DownloadButton("Download the viewer", visible=False,
                                                              elem_id="bundle-download")
                    with gr.Row():
                        export_kind = gr.Radio([".splat", ".ply"], value=".splat", elem_id="export-kind",
                                               label="Export the studio's current look (all Gaussians) as",
                                               info=".splat: 32 bytes a Gaussian, most web viewers; "
                                                    ".ply: the standard 3DGS file")
                        export_look = gr.Button("Export", elem_id="export-look")
                    ui["look_download"] = gr.DownloadButton("Download", visible=False, elem_id="look-download")
                with gr.Tab("Take an attribute from another photo", elem_id="tab-transfer"):
                    with gr.Row():
                        transfer_photo = gr.File(label="Another photo", type="filepath", height=90,
                                                 elem_id="transfer-photo")
                        with gr.Column():
                            ui["transfer_category"] = gr.Dropdown(list(CATEGORY_SLOTS), label="Attribute to take",
                                                                  elem_id="transfer-category")
                            transfer = gr.Button("Take it", elem_id="transfer")
                    gr.Examples(EXAMPLES, inputs=transfer_photo, label="Or take it from an example")
                with gr.Tab("Drive it", elem_id="tab-drive"):
                    with gr.Row():
                        drive_clip = gr.Video(label="A clip of a face (up to 30 s): upload one or record it",
                                              sources=["upload", "webcam"], height=320, elem_id="drive-clip")
                        with gr.Column():
                            drive_side = gr.Checkbox(True, label="Show the clip beside the avatar", elem_id="drive-side")
                            drive_audio = gr.Checkbox(True, label="Keep the clip's sound", elem_id="drive-audio")
                            drive_run = gr.Button("Drive the avatar", variant="primary", elem_id="drive")
                            ui["drive_status"] = gr.Markdown(elem_id="drive-status")
                    ui["drive_video"] = gr.Video(label="Your avatar performing it (at the look above)",
                                                 interactive=False, height=320, elem_id="drive-video")
                    ui["drive_download"] = gr.DownloadButton("Download", visible=False, elem_id="drive-download")

        view_inputs = [ui["yaw"], ui["pitch"], *(ui[f"expr:{name}"] for name in EXPRESSIONS)]
        studio_outputs = (["studio", "view", "clip_category", "clip_start", "clip_end", "clip_frames",
                           "transfer_category", "yaw", "pitch", *(f"expr:{name}" for name in EXPRESSIONS)]
                          + [f"{kind}:{c}" for c in CATEGORY_SLOTS for kind in ("row", "slider")])
        render_queue = dict(concurrency_id="render", concurrency_limit=settings.render_concurrency)
        live = dict(trigger_mode="always_last", show_progress="hidden", **render_queue)

        build_outputs = ["session", "status", "report", "ingest", "gallery", "losses", "preview", "cancel", "builds",
                         *studio_outputs]
        # Internal events (page load, upload check, menus) are private: the API page lists what a client can use.
        internal = dict(api_visibility="private")
        # Watching a build only waits on it, so reattached pages never take a render slot.
        on(demo.load, handlers.restore, [token], ["token", *build_outputs], concurrency_id="watch",
           concurrency_limit=None, **internal)
        on(photo.change, handlers.check_photo, [photo], ["photo_preview", "status"], **render_queue, **internal)
        on(run.click, handlers.run, [photo, categories, preset, session], build_outputs,
           api_name="run", concurrency_id="pipeline", concurrency_limit=settings.run_concurrency)
        on(cancel.click, handlers.cancel, [session], ["status"], queue=False, api_name="cancel")
        on(ui["builds"].input, handlers.choose, [session, ui["builds"]],
           ["status", "view", "report", "builds", "ingest", "gallery", "losses", "preview", *studio_outputs],
           **render_queue, **internal)
        preset.change(default_categories, [preset], [categories], queue=False, **internal)
        sliders = [f"slider:{c}" for c in CATEGORY_SLOTS]

        for category in CATEGORY_SLOTS:
            on(ui[f"slider:{category}"].input, functools.partial(handlers.slide, category=category),
               [session, ui[f"slider:{category}"], *view_inputs], ["view"], api_name=f"slide_{category}", **live)
            on(ui[f"dice:{category}"].click, functools.partial(handlers.randomize, category=category),
               [session, *view_inputs], ["view", *sliders], api_name=f"random_{category}", **render_queue)
        for i, control in enumerate(view_inputs):
            # One documented endpoint re-renders; the other controls' events are the same call.
            on(control.input, handlers.rerender, [session, *view_inputs], ["view"], api_name="render",
               api_visibility="public" if i == 0 else "private", **live)
        on(random_all.click, handlers.randomize, [session, *view_inputs], ["view", *sliders], api_name="random",
           **render_queue)
        on(reset.click, handlers.reset, [session],
           ["view", *sliders, "yaw", "pitch", *(f"expr:{name}" for name in EXPRESSIONS)], api_name="reset",
           **render_queue)

        heavy = dict(concurrency_id="export", concurrency_limit=settings.run_concurrency)
        on(ui["clip_category"].change, handlers.clip_range, [session, ui["clip_category"]],
           ["clip_start", "clip_end"], queue=False, **internal)
        on(build_clip.click, handlers.clip,
           [session, ui["clip_category"], ui["clip_start"], ui["clip_end"], ui["clip_frames"], clip_kind, *view_inputs],
           ["clip_gif", "clip_video", "clip_download"], api_name="clip", **heavy)
        for opened in (show_3d.click, tab_3d.select):
            on(opened, handlers.viewer_3d, [session, *view_inputs], ["viewer", "viewer_info", "bundle_download"],
               api_name="viewer_3d", api_visibility="public" if opened == show_3d.click else "private", **heavy)
        on(export_look.click, handlers.export_look, [session, export_kind, *view_inputs], ["look_download"],
           api_name="export_look", **heavy)
        on(transfer.click, handlers.transfer, [session, transfer_photo, ui["transfer_category"], *view_inputs],
           ["view"], api_name="transfer", **heavy)
        on(drive_run.click, DriveTab(handlers).drive, [session, drive_clip, drive_side, drive_audio],
           ["drive_status", "drive_video", "drive_download"], api_name="drive", **heavy)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=settings.render_concurrency)
    return demo


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    # Gradio's main loop closes the server on KeyboardInterrupt; then atexit removes this process's root.
    raise KeyboardInterrupt


def main() -> None:
    settings = Settings.from_env()
    root = SessionRoot(os.environ.get("PERSE_WORK_ROOT") or None, ttl_s=settings.session_ttl_s)
    root.start_sweeper(settings.sweep_interval_s, settings.orphan_s)
    demo = build(Handlers(root, settings))
    # Before the port opens, so no visitor's call loads (or builds) gsplat's kernels. ZeroGPU's main
    # process only emulates CUDA (a kernel launched there fails); its GPU calls run in workers.
    if settings.gpu and not spaces.config.Config.zero_gpu:
        print(f"gsplat's CUDA kernels warmed up in {warm_up():.1f} s", flush=True)
    if not spaces.config.Config.zero_gpu:
        # The "Drive it" tab's face trackers start now, so no visitor waits for them (1.7-3.5 s); a
        # ZeroGPU call runs in a process of its own, which starts its own.
        start_tracking(TRACKING)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
                server_port=int(os.environ.get("PORT", os.environ.get("GRADIO_SERVER_PORT", "7860"))),
                css=CSS, allowed_paths=[str(root.sessions_dir), str(ASSETS)], show_error=False,
                max_file_size=settings.max_upload_bytes,
                # Gradio's run history would list every internal event (page load, upload check, menus)
                # with its raw values, and keep the visitor's photos in the browser.
                run_history=False)


if __name__ == "__main__":
    main()
