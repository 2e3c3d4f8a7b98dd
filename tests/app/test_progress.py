"""How the app folds the pipeline's progress events into what it shows."""
import math

from perse.app.progress import (
    CPU_WEIGHTS,
    GPU_WEIGHTS,
    RunView,
    loss_figure,
    stage_weights,
    training_losses,
)
from perse.events import Progress


def test_events_land_in_the_right_places():
    view = RunView()
    view.update(Progress("ingest", 0.0, "reading"))
    assert view.changed == {"status"} and view.ingest_image is None
    view.update(Progress("ingest", 1.0, "aligned", image="/r/debug.png"))
    assert view.ingest_image == "/r/debug.png" and "ingest" in view.changed
    view.update(Progress("synth", 0.2, "hair: blonde", image="/r/a.png"))
    view.update(Progress("synth", 0.4, "hair: blonde again", image="/r/a.png"))
    view.update(Progress("synth", 0.6, "glasses: round", image="/r/b.png"))
    assert view.gallery == [("/r/a.png", "hair: blonde"), ("/r/b.png", "glasses: round")]
    view.update(Progress("train", 0.5, "step 10", image="/r/p.png", metrics={"step": 10, "l1": 0.2, "total": 0.3}))
    assert view.preview == "/r/p.png" and {"preview", "losses"} <= view.changed
    assert view.losses == [{"l1": 0.2, "total": 0.3, "step": 10.0}]
    view.update(Progress("metrics", 0.0, "measuring"))
    assert view.summary == ""
    view.update(Progress("metrics", 1.0, "held-out PSNR 21.5 dB", clip="/r/report.html", metrics={"psnr": 21.5}))
    assert view.summary == "held-out PSNR 21.5 dB" and view.report == "/r/report.html"


def test_overall_progress_follows_the_expected_time():
    for weights in (CPU_WEIGHTS, GPU_WEIGHTS):
        view = RunView(weights=weights)
        seen = [view.update(Progress(stage, f)).overall
                for stage in ("ingest", "synth", "train", "export", "metrics") for f in (0.0, 0.5, 1.0)]
        assert seen == sorted(seen) and seen[0] == 0.0 and abs(seen[-1] - 1.0) < 1e-9
    # A draft is built between ingest and synthesis (perse.pipeline.run): the bar never moves back.
    view = RunView(weights=stage_weights(3000, gpu=True, draft=True))
    seen = [view.update(Progress(stage, f)).overall
            for stage in ("ingest", "draft", "synth", "train", "export", "metrics") for f in (0.0, 0.5, 1.0)]
    assert seen == sorted(seen) and seen[0] == 0.0 and abs(seen[-1] - 1.0) < 1e-9 and seen[3] < seen[5]
    view = RunView(weights=stage_weights(200, gpu=False))
    span = view.update(Progress("train", 1.0)).overall - view.update(Progress("train", 0.0)).overall
    assert abs(span - 0.8) < 1e-9, "training takes 80 % of a tiny CPU run, so 80 % of the bar"
    view = RunView(weights=stage_weights(12000, gpu=True))
    span = view.update(Progress("train", 1.0)).overall - view.update(Progress("train", 0.0)).overall
    assert 0.7 < span < 0.8, "four times fast's steps: training is about three quarters of the run"


def test_the_reports_identity_below_its_threshold_is_noticed():
    view = RunView()
    assert not view.identity_low
    identity = {"backend": "dlib", "threshold": 0.5, "mean": 0.42}
    view.update(Progress("metrics", 1.0, "done", metrics={"identity": identity}))
    assert view.identity_low
    view.update(Progress("metrics", 1.0, "done", metrics={"identity": {**identity, "mean": 0.7}}))
    assert not view.identity_low
    assert "Training the avatar" in RunView().update(Progress("train", 0.25, "step 5")).status_markdown()


def test_training_losses_keep_only_finite_losses():
    row = training_losses({"step": 7, "elapsed": 3.0, "psnr": 20.0, "l1": 0.1, "interp": math.nan, "ssim": 0.4})
    assert row == {"l1": 0.1, "ssim": 0.4, "step": 7.0}
    assert training_losses({"l1": 0.1}) == {}, "no step, no point on the chart"
    assert training_losses({"step": 3, "elapsed": 1.0}) == {}


def test_loss_figure_has_one_trace_per_loss():
    rows = [{"step": 1.0, "l1": 0.5, "total": 0.6}, {"step": 2.0, "l1": 0.4, "total": 0.5, "interp": 0.1}]
    figure = loss_figure(rows)
    traces = {trace.name: list(trace.x) for trace in figure.data}
    assert traces == {"l1": [1.0, 2.0], "total": [1.0, 2.0], "interp": [2.0]}
    assert figure.layout.yaxis.type == "log"
    assert loss_figure([{"step": 1.0, "prior": -0.5}]).layout.yaxis.type == "linear"
