"""App handlers without a browser: settings, input checks, clear messages for bad uploads, sessions."""
import types

import pytest

from perse.app.handlers import Handlers, Settings
from perse.app.session import SessionRoot
from perse.errors import PerseError


def _request(session_hash):
    return types.SimpleNamespace(session_hash=session_hash)


@pytest.fixture
def handlers(tmp_path):
    return Handlers(SessionRoot(tmp_path / "sessions"), Settings(gpu=False))


def test_settings_from_the_environment():
    settings = Settings.from_env({"PERSE_APP_OVERRIDES": "avatar.steps=5; synth.frames=4;", "PERSE_DEVICE": "cpu",
                                  "PERSE_RUN_CONCURRENCY": "3"})
    assert settings.overrides == ["avatar.steps=5", "synth.frames=4"]
    assert not settings.gpu and settings.presets == ["tiny"] and settings.default_preset == "tiny"
    assert settings.run_concurrency == 3 and "tiny" in settings.notice
    assert Settings(gpu=True).notice == "" and Settings(gpu=True).presets == ["tiny", "fast", "quality"]
    with pytest.raises(PerseError, match="PERSE_QUEUE_SIZE"):
        Settings.from_env({"PERSE_QUEUE_SIZE": "many"})


# Outside a running app, gr.Warning (the visitor's toast) surfaces as a UserWarning.
def test_run_without_a_photo_asks_for_one(handlers):
    with pytest.warns(UserWarning, match="Upload a portrait"):
        outputs = list(handlers.run(None, ["hair"], "tiny", None, _request("a")))
    assert len(outputs) == 1 and outputs[0]["status"] == "Waiting for a portrait."
    assert outputs[0]["session"] is handlers.root.find("a")
    with pytest.warns(UserWarning, match="at least one attribute category"):
        outputs = list(handlers.run("x.png", [], "tiny", None, _request("a")))
    assert "category" in outputs[-1]["status"]


def test_a_bad_upload_shows_the_ingest_message_without_server_paths(handlers, tmp_path):
    upload = tmp_path / "gradio-cache" / "0123abcd" / "holiday.png"
    upload.parent.mkdir(parents=True)
    upload.write_text("this is not an image")
    with pytest.warns(UserWarning, match="holiday.png"):
        outputs = list(handlers.run(str(upload), ["hair"], "fast", None, _request("b")))
    assert "preset `fast` needs a GPU; using `tiny`" in outputs[0]["status"]
    final = outputs[-1]["status"]
    assert final.startswith("**Could not build an avatar from this photo.**")
    assert "holiday.png" in final and str(upload.parent) not in final
    assert "Traceback" not in final


def test_one_build_at_a_time_per_session(handlers, tmp_path):
    session = handlers.root.open("f")
    with session.building:  # a build of this session is under way
        with pytest.warns(UserWarning, match="already running"):
            outputs = list(handlers.run(str(tmp_path / "p.png"), ["hair"], "tiny", session, _request("f")))
    assert outputs == [{"status": "A build is already running in this session."}]
    assert not (session.run_dir / "stages.json").exists(), "the second run must not touch the folder"


def test_cancel_sets_the_sessions_flag(handlers):
    assert handlers.cancel(None) == {}
    session = handlers.root.open("c")
    assert "Stopping" in handlers.cancel(session)["status"]
    assert session.cancel.cancelled


def test_avatar_controls_before_a_build_do_nothing(handlers):
    session = handlers.root.open("d")
    assert handlers.rerender(session, 0, 0, 0, 0, 0, 0) == {}
    assert handlers.slide(None, 1.0, 0, 0, 0, 0, 0, 0, category="hair") == {}


def test_page_unload_removes_the_session_folder(handlers):
    session = handlers.root.open("e")
    (session.run_dir).mkdir()
    handlers.unload(_request("e"))
    assert not session.folder.exists() and handlers.root.find("e") is None
    handlers.unload(_request("never-seen"))  # unknown sessions are ignored
