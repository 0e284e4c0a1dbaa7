"""One video's work in a dataset run, shared by the local and the Ray executor.

:func:`prepare_video` decodes and crops a video's windows (in a worker process or a Ray
task); :func:`run_prepared` runs the network over them (in this process or a Ray actor)
and gives the video's :class:`VideoOutcome`.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from i3d.errors import I3DError
from i3d.inputs.dataset_items import VideoItem
from i3d.preprocess.windows import ClipBuffers, CroppedWindow, VideoOptions, iter_cropped_windows
from i3d.processes import spawn_pool, terminate_pool
from i3d.results import Features, Result
from i3d.streams import streams_named
from i3d.tasks.recognizer import Recognizer


@dataclass(frozen=True)
class Prepared:
    """A video's cropped windows, or the one-line reason it has none, and the warnings preparing it gave
    (a damaged tail, say): a worker's warnings would otherwise be lost."""

    windows: list[CroppedWindow] | None
    error: str | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Asked:
    """What a dataset run asks of each video: the top ``top_k`` classes fused by ``fusion``, and with
    ``features`` its per-window features too."""

    top_k: int = 5
    fusion: str = "mean"
    features: bool = False


@dataclass(frozen=True)
class VideoOutcome:
    """One video's end in a dataset run, whichever executor ran it: its result (logits, windows and the
    seconds each part took), its features when asked, or the one-line error that stopped it."""

    item: VideoItem
    result: Result | None = None
    features: Features | None = None
    error: str | None = None
    seconds: float = 0.0  # the network's part, preparing the windows aside
    notes: tuple[str, ...] = ()  # warnings preparing the windows gave, shown once by the process that records


def prepare_video(path: str, stream_names: tuple[str, ...], video: VideoOptions) -> Prepared:
    """A video's windows, cropped but not finished (uint8 RGB: a quarter of the bytes to send), or the
    one-line reason it has none, and its warnings: what a worker process sends back."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            windows, error = list(iter_cropped_windows(path, streams_named(stream_names), video)), None
        except I3DError as err:
            windows, error = None, str(err)
        except Exception as err:  # a broken file must not stop the dataset: record it
            windows, error = None, f"{path}: unexpected {type(err).__name__}: {err}"
    return Prepared(windows, error, tuple(dict.fromkeys(str(w.message) for w in caught)))


def one_decoding_thread() -> None:
    """Decoding workers' set-up: one FFmpeg thread per video, since the workers already share out the cores."""
    from i3d.inputs.video import set_decode_threads  # loads OpenCV: only in the decoding workers

    set_decode_threads(1)


def windows_ahead(items: list[VideoItem], stream_names: tuple[str, ...], video: VideoOptions,
                  workers: int) -> Iterator[tuple[VideoItem, Prepared]]:
    """Each item's windows in order, prepared by ``workers`` processes at most ``workers + 1`` videos ahead."""
    if workers <= 0:
        for item in items:
            yield item, prepare_video(os.fspath(item.path), stream_names, video)
        return
    pool = spawn_pool(workers, one_decoding_thread)
    pending: list[tuple[VideoItem, Future]] = []
    queue = iter(items)
    try:
        for item in queue:
            pending.append((item, pool.submit(prepare_video, os.fspath(item.path), stream_names, video)))
            if len(pending) > workers:
                break
        while pending:
            item, future = pending.pop(0)
            prepared = future.result()
            next_item = next(queue, None)
            if next_item is not None:
                pending.append((next_item, pool.submit(prepare_video, os.fspath(next_item.path), stream_names, video)))
            yield item, prepared
    except BaseException:  # Ctrl-C, SIGTERM, or the consumer stopping: end work in progress at once
        terminate_pool(pool)
        raise
    pool.shutdown()


def run_prepared(recognizer: Recognizer, item: VideoItem, prepared: Prepared, asked: Asked) -> VideoOutcome:
    """The network's part of one video (either executor): its outcome.

    ``prepared`` is what :func:`prepare_video` sent: the windows, or the reason there are none. Each
    window is finished just before the network takes it, into the memory the previous window's clip
    used (the network keeps no clip once it has its outputs), so one finished clip is held at a time.
    """
    mark = time.perf_counter()
    error, result, feats = prepared.error, None, None
    if error is None:
        buffers = ClipBuffers()
        windows = (window.finish(recognizer.streams, buffers) for window in prepared.windows)
        try:
            if asked.features:
                result, feats = recognizer.classify_with_features(windows, top_k=asked.top_k, fusion=asked.fusion)
            else:
                result = recognizer.classify_windows(windows, top_k=asked.top_k, fusion=asked.fusion)
        except I3DError as err:
            error = str(err)
    return VideoOutcome(item, result, feats, error, time.perf_counter() - mark, prepared.notes)
