"""Run I3D over a whole dataset: one result file per video, resumable, shardable, summarised.

The output folder's format is :mod:`i3d.tasks.batch_folder`: a video's record is the
last thing written for it, so a record means the video is finished; a rerun skips
finished videos and ``shard`` splits the list between processes that share one
folder. Decoding and preprocessing run in worker processes (``workers``, see
:mod:`i3d.tasks.video_work`) while this process runs the network, with at most
``workers + 1`` videos prepared ahead, so memory does not grow with the dataset. With ``engine="ray"`` the same run goes to a Ray cluster (see
:mod:`i3d.tasks.ray_engine`); this process still writes every record.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from i3d.errors import OptionError
from i3d.inputs.dataset_items import Dataset, VideoItem, shard
from i3d.inputs.labels import match_labels
from i3d.preprocess.windows import VideoOptions
from i3d.results import Features, Result
from i3d.tasks.batch_folder import load_record, prepare_folder, record_outcome, settings_of, summarise
from i3d.tasks.progress import Progress
from i3d.processes import available_cores
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.video_work import run_prepared, windows_ahead

if TYPE_CHECKING:
    from i3d.tasks.ray_engine import RayOptions

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class BatchOptions:
    """How a dataset run goes: what to write, which part of the list, how many helpers."""

    top_k: int = 5
    fusion: str = "mean"
    features: bool = False  # write per-window 1024-d features per stream
    overwrite: bool = False  # start over in a folder holding results made with other settings
    retry_failed: bool = False  # run failed videos again instead of keeping their records
    shard: tuple[int, int] | None = None  # (K, N): this process takes shard K of N
    workers: int = 0  # processes decoding and preprocessing ahead of the network; 0: inline
    progress: bool = False
    engine: str = "local"  # local: this machine; ray: decoding tasks and model actors on a Ray cluster
    ray: RayOptions | None = None  # with engine "ray" (None: a local cluster, one model actor)


@dataclass
class BatchReport:
    """What one call of :func:`run_batch` did, and the dataset's summary after it."""

    processed: int
    skipped: int
    failed: int
    summary: dict
    seconds: float
    pending_elsewhere: int = 0  # videos of other shards without a record yet


def _label_indices(dataset: Dataset, categories: tuple[str, ...],
                   label_map: dict[str, str] | None) -> dict[str, int | None]:
    labels = {item.label for item in dataset.items + dataset.missing if item.label is not None}
    return match_labels(sorted(labels), categories, label_map)


def run_batch(dataset: Dataset, out: str | os.PathLike, recognizer: Recognizer, *,
              video: VideoOptions = VideoOptions(), options: BatchOptions = BatchOptions(),
              label_map: dict[str, str] | None = None,
              on_record: Callable[[dict], None] | None = None) -> BatchReport:
    """Classify (and with ``options.features``, extract features from) every video of ``dataset`` into ``out``.

    Finished videos (those with a record) are skipped; a video that fails is
    recorded with its error and the run goes on. Ctrl-C stops after the videos
    already recorded. The summary is rebuilt from every record in ``out``.
    """
    out = Path(out)
    check_batch_options(options)
    video.check(recognizer.streams)  # a bad option would otherwise fail every video, one by one
    if recognizer.head is not None:
        recognizer.head.check_settings(video.numbers())
    started = time.perf_counter()
    labels = _label_indices(dataset, recognizer.categories, label_map)
    settings = settings_of(recognizer, video, fusion=options.fusion, top_k=options.top_k,
                           features=options.features, label_map=label_map)
    prepare_folder(out, settings, options.overwrite)
    mine = shard(dataset.items, *options.shard) if options.shard else dataset.items
    todo, skipped = [], 0
    for item in mine:
        record, broken = load_record(out, item.key, len(recognizer.categories))
        if broken is not None:
            warnings.warn(f"{broken}; running the video again", stacklevel=2)
        if record is not None and not (options.retry_failed and record.get("status") == "failed"):
            skipped += 1
        else:
            todo.append(item)
    stream_names = tuple(s.name for s in recognizer.streams)
    progress = Progress(len(todo), options.progress)
    processed = failed = 0
    outcomes = None
    try:
        if options.engine == "ray":
            outcomes = _ray_outcomes(todo, recognizer, video, options)
        else:
            outcomes = _local_outcomes(todo, stream_names, recognizer, video, options)
        for item, result, features, error, seconds, notes in outcomes:
            for note in notes:  # a worker's warning, shown here once
                warnings.warn(note, stacklevel=2)
            label_index = labels.get(item.label) if item.label is not None else None
            record = record_outcome(out, item, label_index, result, features, error, seconds, video, settings,
                                    notes)
            failed += record["status"] == "failed"
            processed += 1
            progress.update(record["status"] == "failed")
            if on_record is not None:
                on_record(record)
    finally:
        if outcomes is not None:
            outcomes.close()  # whatever stopped the loop, end the work in flight now (and a Ray cluster started here)
        progress.close()
    summary = summarise(dataset, out, recognizer.categories, labels, settings)
    return BatchReport(processed, skipped, failed, summary, time.perf_counter() - started, summary["not_run"])


def _local_outcomes(items: list[VideoItem], stream_names: tuple[str, ...], recognizer: Recognizer,
                    video: VideoOptions, options: BatchOptions
                    ) -> Iterator[tuple[VideoItem, Result | None, Features | None, str | None, float,
                                        tuple[str, ...]]]:
    """Each item's (item, result, features, error, seconds, warnings), the network running in this process."""
    for item, *prepared in windows_ahead(items, stream_names, video, options.workers):
        yield item, *run_prepared(recognizer, tuple(prepared), options.top_k, options.fusion, options.features)


def _ray_outcomes(items: list[VideoItem], recognizer: Recognizer, video: VideoOptions, options: BatchOptions):
    from i3d.tasks.ray_engine import RayOptions, ray_outcomes

    return ray_outcomes(items, recognizer, video, options.top_k, options.fusion, options.features,
                        options.ray or RayOptions())


def check_batch_options(options: BatchOptions) -> BatchOptions:
    """Refuse a worker count no machine could use, an unknown engine, or Ray when it is not installed
    (OptionError)."""
    most = max(2, available_cores())  # more decoding processes than cores only cost memory
    if not 0 <= options.workers <= most:
        raise OptionError("workers", f"must be between 0 and {most} (this machine's cores), not {options.workers}")
    if options.engine not in ENGINES:
        raise OptionError("engine", f"is {options.engine!r}; choose from {', '.join(ENGINES)}")
    if options.engine == "ray":
        from i3d.tasks.ray_engine import RayOptions, check_ray

        check_ray(options.ray or RayOptions())
    return options
