"""Session folders of the app: one per visitor, never shared, removed when the session ends."""
import pickle

import pytest

from perse.app.session import FileCancelToken, SessionRoot
from perse.errors import Cancelled


def test_each_key_gets_its_own_folder_and_keeps_it(tmp_path):
    root = SessionRoot(tmp_path / "root")
    a, b = root.open("hash-a"), root.open("hash-b")
    assert a.folder != b.folder and a.folder.is_dir() and b.folder.is_dir()
    assert root.open("hash-a") is a
    assert a.folder.parent == b.folder.parent == tmp_path / "root"


def test_folder_name_never_comes_from_the_client_key(tmp_path):
    root = SessionRoot(tmp_path / "root")
    session = root.open("../../escape")
    assert session.folder.parent == tmp_path / "root"
    assert not (tmp_path / "escape").exists()


def test_close_removes_the_folder_and_cancels_its_run(tmp_path):
    root = SessionRoot(tmp_path / "root")
    session = root.open("k")
    (session.run_dir / "dataset").mkdir(parents=True)
    token = session.cancel
    root.close(session)
    assert not session.folder.exists()
    assert root.find("k") is None and len(root) == 0
    assert token.cancelled, "a run still going must stop once its folder is gone"
    fresh = root.open("k")
    assert fresh is not session and fresh.folder != session.folder


def test_close_all_removes_an_owned_temporary_root():
    root = SessionRoot()
    folder = root.open("k").folder
    assert folder.exists()
    root.close_all()
    assert not root.root.exists()


def test_output_paths_never_repeat(tmp_path):
    session = SessionRoot(tmp_path).open("k")
    paths = {session.output_path("clip", ".gif") for _ in range(5)}
    assert len(paths) == 5 and all(p.parent == session.folder / "exports" for p in paths)


def test_file_cancel_token_crosses_process_boundaries(tmp_path):
    token = FileCancelToken(tmp_path / "cancel.flag")
    token.check()  # not cancelled: no exception
    # What a forked ZeroGPU worker receives: a pickled copy that shares only the flag file.
    remote = pickle.loads(pickle.dumps(token))
    assert not remote.cancelled
    token.cancel()
    assert remote.cancelled
    with pytest.raises(Cancelled):
        remote.check()
    token.reset()
    assert not token.cancelled and not pickle.loads(pickle.dumps(token)).cancelled
