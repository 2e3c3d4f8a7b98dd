"""The editor's looks and interpolation targets, drawn beside the animator: in worker processes when the
editor allows it (`Editor.processes`), else on threads of this process.

Drawing a look is CPU work in many small numpy, OpenCV and torch calls that hold the GIL for much of
their time. On the H200 machine's 16 cores, the `fast` preset's 480 looks and targets of one portrait took
43 s on 16 threads (36 s with one OpenMP thread each) and 29 s on 16 processes, and the threads also
slowed the animator, the identity scorer and the writers that share their process. A worker process
gets the portrait once, builds its own editor on the CPU (it lifts the head for accessories once and
keeps it) and runs with one thread of its own, as many workers as cores.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import numpy as np

from perse.core.io import to_uint8
from perse.synth.catalog import Value
from perse.synth.catalog import category as get_category
from perse.synth.edit import EDITORS, EditResult, input_image, make_editor

# Fewer cores than this: the process start (torch imported in each) costs more than the GIL does.
MIN_CORES_FOR_PROCESSES = 4
MAX_PROCESSES = 16


class Looks:
    """One editor drawing over one portrait: single looks, looks of several categories drawn one over
    another, and in-betweens composited as the dataset stores them."""

    def __init__(self, editor, portrait, background: tuple[float, float, float]):
        self.editor = editor
        self.portrait = portrait
        self.background = np.asarray(background, np.float32)

    def look(self, name: str, value: Value) -> EditResult:
        return self.editor.edit(self.portrait, get_category(name), value, 1.0)

    def mix(self, looks: list[tuple[str, Value]]) -> EditResult:
        """Each look drawn over the previous one's result (perse.synth.mix); the region is their union.
        `dataclasses.replace` keeps the landmarks, so the editor knows the head it already lifted."""
        portrait, region, result = self.portrait, None, None
        for name, value in looks:
            result = self.editor.edit(portrait, get_category(name), value, 1.0)
            region = result.region if region is None else np.maximum(region, result.region)
            portrait = dataclasses.replace(portrait, image=to_uint8(result.image), matte=result.matte)
        return EditResult(result.image, region, result.matte, result.accessory)

    def between(self, name: str, a: Value | None, b: Value | None, t: float) -> tuple[np.ndarray, ...]:
        """The editor's own look at mix t from a to b (None: the source), as the dataset stores a target."""
        return self._target(self.editor.edit_between(self.portrait, get_category(name), a, b, t))

    def morphed(self, first: EditResult | None, second: EditResult, t: float) -> tuple[np.ndarray, ...]:
        """A target morphed between two drawn looks (first None: the source), for editors that cannot
        draw in-betweens (perse.synth.interp)."""
        from perse.synth.interp import morph

        region = second.region if first is None else np.maximum(first.region, second.region)
        return self._target(morph(input_image(self.portrait) if first is None else first.image, second.image,
                                  np.asarray(self.portrait.matte, np.float32) if first is None else first.matte,
                                  second.matte, region, t))

    def _target(self, target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image over the background, region and matte, in bytes; the region does not yet hold the
        endpoints' regions, which the caller has."""
        matte = target.matte[..., None]
        image = target.image * matte + (1 - matte) * self.background
        return to_uint8(image), to_uint8(target.region), to_uint8(target.matte)


_worker_looks: Looks | None = None


def _start_worker(editor: str, config: dict, portrait, background) -> None:
    global _worker_looks
    import cv2
    import torch

    from perse.config import config_from_dict

    # One thread each: the workers are as many as the cores.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    settings = config_from_dict(config)
    settings.device = "cpu"  # CPU work by design; a CUDA context per worker would cost memory for nothing
    _worker_looks = Looks(make_editor(editor, settings), portrait, background)


def _timed(looks: Looks, method: str, args: tuple) -> tuple[float, Any]:
    start = time.perf_counter()
    value = getattr(looks, method)(*args)
    return time.perf_counter() - start, value


def _in_worker(method: str, args: tuple) -> tuple[float, Any]:
    return _timed(_worker_looks, method, args)


def _warm_worker() -> None:
    pass


def process_count(editor: str, requested: int, cores: int) -> int:
    """synth.edit_processes resolved: -1 is one per core (at most MAX_PROCESSES) on machines with at
    least MIN_CORES_FOR_PROCESSES cores, when the editor can run in processes; else none."""
    if not getattr(EDITORS.load(editor), "processes", False):
        return 0
    if requested >= 0:
        return requested
    return min(MAX_PROCESSES, cores) if cores >= MIN_CORES_FOR_PROCESSES else 0


class Editing:
    """Submits `Looks` work to worker processes or threads; `result` returns a job's value and its seconds."""

    def __init__(self, config, portrait, background: tuple[float, float, float], processes: int, threads: int):
        self.processes = processes
        if processes:
            # spawn: a forked copy of a process holding torch's (or CUDA's) threads can deadlock.
            self.executor: Executor = ProcessPoolExecutor(
                processes, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                initargs=(config.synth.editor, config.to_dict(), portrait, tuple(background)))
            # One task per worker while none is idle: the executor starts them all now, while the
            # caller lifts the portrait and scores its identity.
            for _ in range(processes):
                self.executor.submit(_warm_worker)
            self.local = None
        else:
            self.executor = ThreadPoolExecutor(threads, thread_name_prefix="synth-edit")
            self.local = Looks(make_editor(config.synth.editor, config), portrait, background)

    def submit(self, method: str, *args) -> Future:
        if self.local is not None:
            return self.executor.submit(_timed, self.local, method, args)
        return self.executor.submit(_in_worker, method, args)

    @staticmethod
    def result(future: Future) -> tuple[float, Any]:
        return future.result()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
