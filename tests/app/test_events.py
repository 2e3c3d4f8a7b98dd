"""Every event of the real app.py page, through gradio's own preprocess and postprocess (what failed with
red "Error" badges before): with no avatar, and with an avatar, including a slider of a category it
lacks, a transfer photo with no face, and cancel when idle. Fails on any exception or logged error."""
import asyncio
import warnings

import pytest
from gradio.state_holder import SessionState
from PIL import Image

import app
from perse.app import studio
from perse.app.builds import Build
from perse.app.handlers import Handlers, Settings
from perse.app.progress import CPU_WEIGHTS
from perse.app.session import SessionRoot


@pytest.fixture(scope="module")
def trained(tiny_avatar):
    return tiny_avatar


@pytest.fixture
def page(tmp_path):
    handlers = Handlers(SessionRoot(tmp_path / "work"), Settings(gpu=False))
    return handlers, app.build(handlers)


def _fire(demo, fn, state, values=None):
    """Run one event the way the server does (every yield of a generator); returns its outputs."""
    values = values or {}
    inputs = [None if block.stateful else values.get(block.elem_id or type(block).__name__, getattr(block, "value", None))
              for block in fn.inputs]

    async def call():
        outputs, iterator = [], None
        while True:
            result = await demo.process_api(block_fn=fn, inputs=inputs, state=state, request=None,
                                            session_hash="page", iterator=iterator)
            outputs.append(result["data"])
            if not result.get("is_generating"):
                return outputs
            iterator = result["iterator"]

    return asyncio.run(call())


def _events(demo):
    # gr.Examples' own loader is gradio's, fed by the examples table, not by a visitor's values.
    return [fn for fn in demo.fns.values() if fn.name != "load_example"]


def test_every_event_with_no_avatar_answers_cleanly(page):
    _, demo = page
    state = SessionState(demo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the visitor's toasts
        for fn in _events(demo):
            assert _fire(demo, fn, state), fn.name


def test_every_event_on_an_avatar_answers_cleanly(page, trained, tmp_path):
    handlers, demo = page
    run, config = trained
    state = SessionState(demo)
    session = handlers.root.open(None)
    build = Build(1, run, str(tmp_path / "me.png"), config, weights=CPU_WEIGHTS)
    build.info, build.source, build.image = studio.open_avatar(str(run), studio.View())
    build.state = "ready"
    session.builds.append(build)
    session.current = build  # what a finished build does
    faceless = handlers.root.cache_dir / "0123" / "wall.png"  # where gradio puts an upload
    faceless.parent.mkdir()
    Image.new("RGB", (128, 128), (128, 140, 150)).save(faceless)
    upload = {"path": str(faceless), "orig_name": "wall.png", "meta": {"_type": "gradio.FileData"}}
    values = {"BrowserState": session.key, "transfer-photo": upload, "clip-frames": 3, "builds": 1}
    [load] = [fn for fn in demo.fns.values() if fn.name == "restore"]
    shown, _ = _fire(demo, load, state, values)  # the page (re)loads: the studio and its menus show this avatar
    assert shown[0] == session.key and build.look is build.source
    with warnings.catch_warnings(record=True) as toasts:
        warnings.simplefilter("always", UserWarning)
        for fn in _events(demo):
            if fn.name in ("run", "check_photo", "clip"):
                continue  # a build and the photo check are covered in test_handlers; clips in test_studio
            assert _fire(demo, fn, state, values), fn.name
    toasts = [str(toast.message) for toast in toasts if issubclass(toast.category, UserWarning)]
    assert any("no face found" in toast for toast in toasts), toasts
    assert any("unknown category 'beard'" in toast for toast in toasts), toasts
    assert session.current is build and session.latent is not None
