"""App handlers without a browser: settings, bad uploads, builds that survive reloads and failed runs,
cancel, and every handler answering with no avatar. The pipeline is appfakes' stand-in (the real one
runs behind the same handlers in tests/e2e)."""
import struct
import types
import zlib

import pytest
from appfakes import install
from PIL import Image

from perse.app.handlers import Handlers, Settings, file_size
from perse.app.session import SessionRoot
from perse.errors import PerseError


def _request(session_hash):
    return types.SimpleNamespace(session_hash=session_hash)


@pytest.fixture
def handlers(tmp_path):
    return Handlers(SessionRoot(tmp_path / "work"), Settings(gpu=False))


@pytest.fixture
def portrait(tmp_path):
    path = tmp_path / "me.png"
    Image.new("RGB", (96, 96), (200, 180, 160)).save(path)
    return str(path)


def _statuses(outputs):
    return [out["status"] for out in outputs if "status" in out]


def test_settings_from_the_environment():
    settings = Settings.from_env({"PERSE_APP_OVERRIDES": "avatar.steps=5; synth.frames=4;", "PERSE_DEVICE": "cpu",
                                  "PERSE_RUN_CONCURRENCY": "3", "PERSE_SESSION_HOURS": "0.5",
                                  "PERSE_MAX_UPLOAD_MB": "2"})
    assert settings.overrides == ["avatar.steps=5", "synth.frames=4"]
    assert not settings.gpu and settings.presets == ["tiny"] and settings.default_preset == "tiny"
    assert settings.run_concurrency == 3 and "tiny" in settings.notice
    assert settings.session_ttl_s == 1800 and settings.max_upload_bytes == 2_000_000
    assert Settings(gpu=True).notice == "" and Settings(gpu=True).presets == ["tiny", "fast", "quality"]
    for name, value in (("PERSE_QUEUE_SIZE", "many"), ("PERSE_SESSION_HOURS", "-1"), ("PERSE_ORPHAN_SECONDS", "nan"),
                        ("PERSE_RUN_CONCURRENCY", "0")):
        with pytest.raises(PerseError, match=f"{name}=.*greater than 0"):
            Settings.from_env({name: value})


def test_file_sizes_never_read_zero():
    assert file_size(__file__).endswith("KB") or file_size(__file__).endswith("MB")
    assert file_size(__file__)[0] != "0"


def _bomb(path):
    """A valid PNG header claiming 60000 x 60000 pixels, with one row of data: a few hundred bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
                     + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind, expected", [
    ("text", "not an image"), ("empty", "is empty"), ("bomb", "refused before decoding"), ("tiny", "only 8x8 pixels"),
])
def test_every_bad_upload_gets_the_ingest_message(handlers, tmp_path, kind, expected):
    upload = tmp_path / "gradio-cache" / "0123abcd" / f"holiday-{kind}.png"
    upload.parent.mkdir(parents=True)
    if kind == "text":
        upload.write_text("this is not an image")
    elif kind == "empty":
        upload.write_bytes(b"")
    elif kind == "bomb":
        _bomb(upload)
    else:
        Image.new("RGB", (8, 8)).save(upload)
    with pytest.warns(UserWarning, match=expected):
        out = handlers.check_photo(str(upload))
    assert out["photo_preview"] is None and expected in out["status"] and upload.name in out["status"]
    assert str(upload.parent) not in out["status"] and "Traceback" not in out["status"]


def test_a_good_upload_shows_a_preview(handlers, tmp_path):
    photo = tmp_path / "big.png"
    Image.new("RGB", (1200, 900), (10, 20, 30)).save(photo)
    out = handlers.check_photo(str(photo))
    assert out["photo_preview"].shape == (384, 512, 3) and "1200x900" in out["status"]
    assert handlers.check_photo(None) == {"photo_preview": None}


def test_a_bad_upload_run_anyway_fails_with_the_ingest_message(handlers, tmp_path):
    upload = tmp_path / "0123abcd" / "holiday.png"
    upload.parent.mkdir(parents=True)
    upload.write_text("this is not an image")
    with pytest.warns(UserWarning, match="holiday.png is a text file, not an image"):
        outputs = list(handlers.run(str(upload), ["hair"], "fast", None, _request("b")))
    assert "preset `fast` needs a GPU; using `tiny`" in outputs[0]["status"]
    final = outputs[-1]["status"]
    assert final.startswith("**Could not build an avatar from this photo.**")
    assert "holiday.png" in final and str(upload.parent) not in final and "Traceback" not in final
    assert outputs[-1]["cancel"]["interactive"] is False


def test_run_without_a_photo_or_categories_asks_for_them(handlers):
    with pytest.warns(UserWarning, match="Upload a portrait"):
        outputs = list(handlers.run(None, ["hair"], "tiny", None, _request("a")))
    assert len(outputs) == 1 and outputs[0]["status"] == "Waiting for a portrait."
    assert outputs[0]["session"] is handlers.root.find("api:a")
    with pytest.warns(UserWarning, match="at least one attribute category"):
        outputs = list(handlers.run("x.png", [], "tiny", None, _request("a")))
    assert "category" in outputs[-1]["status"]


def test_a_visitor_keeps_avatars_across_reloads_and_failed_runs(handlers, portrait, tmp_path, monkeypatch):
    fake = install(monkeypatch)
    [first] = list(handlers.restore(None, _request("page-1")))
    token, session = first["token"], first["session"]
    assert first["cancel"]["interactive"] is False and first["builds"]["visible"] is False

    # A build starts; the page is reloaded half-way: the new page reattaches to its progress.
    fake.gate.clear()
    run = handlers.run(portrait, ["hair"], "tiny", session, _request("page-1"))
    assert next(run)["cancel"]["interactive"] is True
    while "ingest" not in next(run):
        pass
    run.close()  # the old page is gone
    reload = handlers.restore(token, _request("page-2"))
    attached = next(reload)
    assert attached["session"] is session and "view" not in attached
    progress = next(reload)
    assert progress["ingest"].endswith("debug.png") and "Training the avatar" in progress["status"]
    fake.gate.set()
    final = list(reload)[-1]
    assert final["status"].startswith("**Avatar ready**") and final["studio"]["visible"] is True
    assert final["builds"]["choices"] == [("#1: me.png (hair)", 1)] and final["cancel"]["interactive"] is False

    # Reloading the finished page shows the avatar again, with its menu.
    [again] = list(handlers.restore(token, _request("page-3")))
    assert again["view"] is not None and again["status"].startswith("**Welcome back.**")
    assert again["builds"]["value"] == 1 and again["ingest"].endswith("debug.png") and again["losses"] is not None

    # A later run with a photo that has no face fails; the first avatar stays in the studio.
    noface = tmp_path / "noface.png"
    Image.new("RGB", (96, 96)).save(noface)
    with pytest.warns(UserWarning, match="no face found"):
        failed = list(handlers.run(str(noface), ["hair"], "tiny", session, _request("page-3")))
    assert "no face found" in failed[-1]["status"] and "#1: me.png (hair)" in failed[-1]["status"]
    assert "studio" not in failed[-1] and session.current.number == 1 and session.latent is not None
    assert failed[-1]["ingest"].endswith("001/debug.png"), "the kept avatar's own build panels come back"

    # The next run resumes the failed one's folder, never the finished avatar's.
    done = list(handlers.run(portrait, ["hair"], "tiny", session, _request("page-3")))[-1]
    assert [number for _, number in done["builds"]["choices"]] == [1, 2] and done["builds"]["value"] == 2
    assert [b.folder.name for b in session.builds] == ["001", "002"]
    back = handlers.choose(session, 1)
    assert session.current.number == 1 and back["builds"]["value"] == 1 and back["view"] is not None
    assert handlers.choose(session, 7) == {"builds": back["builds"]}


def test_a_draft_avatar_is_played_with_while_the_build_runs(handlers, portrait, tmp_path, monkeypatch):
    fake = install(monkeypatch)
    fake.draft = True
    session = handlers.root.open("api:d")
    done = list(handlers.run(portrait, ["hair"], "tiny", session, _request("d")))[-1]
    assert done["status"].startswith("**Avatar ready**")
    earlier = session.current

    fake.gate.clear()
    fake.trained.clear()
    run = handlers.run(portrait, ["hair"], "tiny", session, _request("d"))
    shown = next(out for out in run if "studio" in out)
    build = session.current
    assert build is not earlier and build.avatar_name == "draft" and session.run_dir == build.folder / "draft"
    assert shown["slider:hair"]["maximum"] == 1, "the draft's sliders: its two looks"
    assert "The studio below shows the avatar so far (draft)" in shown["status"]
    assert handlers.slide(session, 1.0, 0, 0, category="hair")["view"] is not None
    assert fake.edited[-1] == str(build.folder / "draft"), "the draft answers the sliders"

    # The training checkpoint has the finished avatar's looks: the studio is rebuilt once more, then serves it.
    fake.trained.set()
    rebuilt = next(out for out in run if "studio" in out)
    assert rebuilt["slider:hair"]["maximum"] == 2 and session.run_dir == build.folder / ".work"
    assert build.avatar_name == "training step 5"
    fake.gate.set()
    final = list(run)[-1]
    assert final["status"].startswith("**Avatar ready**") and session.run_dir == build.folder
    assert fake.opened[-3:] == [f"{build.folder}/draft", f"{build.folder}/.work", str(build.folder)]

    # A build stopped after its draft gives the studio back to the avatar shown before it.
    fake.gate.clear()
    fake.trained.clear()
    run = handlers.run(portrait, ["hair"], "tiny", session, _request("d"))
    next(out for out in run if "studio" in out)
    assert session.current is not build and session.current.avatar_name == "draft"
    handlers.cancel(session)
    assert list(run)[-1]["status"].startswith("**Stopped.**") and session.current is build


def test_an_avatar_unlike_the_person_is_ready_with_a_warning(handlers, portrait, monkeypatch):
    fake = install(monkeypatch)
    fake.identity = {"backend": "dlib", "threshold": 0.5, "mean": 0.31}
    with pytest.warns(UserWarning, match="may not look like the person: identity 0.31"):
        outputs = list(handlers.run(portrait, ["hair"], "tiny", None, _request("w")))
    assert outputs[-1]["status"].startswith("**Avatar ready, with a warning**") and "0.31" in outputs[-1]["status"]
    statuses = "\n".join(_statuses(outputs))
    assert all(message in statuses for message in ("aligned", "step 5/10", "held-out PSNR")), \
        "a client streaming the build reads every event's message"
    assert "checkpoint avatar/checkpoint.pt" in statuses and str(handlers.root.root) not in statuses, "no server paths"


def test_cancel_stops_a_build_without_paths_or_commands(handlers, portrait, monkeypatch):
    fake = install(monkeypatch)
    session = handlers.root.open("api:c")
    assert handlers.cancel(None) == {} and handlers.cancel(session) == {}, "idle: nothing to stop"
    fake.gate.clear()
    run = handlers.run(portrait, ["hair"], "tiny", session, _request("c"))
    next(run)
    assert fake.started.wait(10)
    with pytest.warns(UserWarning, match="already running"):
        second = list(handlers.run(portrait, ["hair"], "tiny", session, _request("c")))
    assert second[-1]["status"] == "A build is already running in this session."
    assert "Stopping" in handlers.cancel(session)["status"]
    final = list(run)[-1]["status"]
    assert final.startswith("**Stopped.**") and "press Run" in final
    assert "/" not in final and "perse " not in final and "--resume" not in final


def test_avatar_controls_before_a_build_answer_with_a_hint(handlers):
    session = handlers.root.open("api:d")
    view = (0, 0, 0, 0, 0, 0)
    for call in (lambda s: handlers.rerender(s, *view), lambda s: handlers.slide(s, 1.0, *view, category="hair"),
                 lambda s: handlers.randomize(s, *view), lambda s: handlers.reset(s),
                 lambda s: handlers.transfer(s, "x.png", "hair", *view), lambda s: handlers.clip_range(s, "hair"),
                 lambda s: handlers.clip(s, "hair", 0, 1, 4, "GIF", *view), lambda s: handlers.export_look(s, ".ply", *view),
                 lambda s: handlers.viewer_3d(s, *view)):
        assert call(None) == {} and call(session) == {}
    assert handlers.choose(None, 1) == {"builds": handlers._builds_menu(None)}
