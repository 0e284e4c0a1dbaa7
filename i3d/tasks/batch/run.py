"""Run I3D over a whole dataset: one result file per video, resumable, shardable, summarised.

The output folder's format is :mod:`i3d.tasks.batch.folder`: a video's record is the
last thing written for it, so a record means the video is finished; a rerun skips
finished videos and ``shard`` splits the list between processes that share one
folder. Decoding and preprocessing run in worker processes (``workers``, see
:mod:`i3d.tasks.batch.video_work`) while this process runs the network, with at most
``workers + 1`` videos prepared ahead, so memory does not grow with the dataset. With
``executor="ray"`` the same run goes to a Ray cluster (see :mod:`i3d.tasks.batch.ray_executor`);
this process still writes every record.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import InitVar, dataclass
from pathlib import Path

from i3d.errors import OptionError
from i3d.files import reason
from i3d.inputs.dataset_items import Dataset, VideoItem, shard
from i3d.inputs.labels import match_labels
from i3d.preprocess.windows import VideoOptions
from i3d.processes import available_cores
from i3d.tasks.batch.folder import prepare_folder, settings_of
from i3d.tasks.batch.progress import Progress
from i3d.tasks.batch.ray_cluster import RayOptions, check_ray
from i3d.tasks.batch.ray_executor import ray_outcomes
from i3d.tasks.batch.records import read_record, record_outcome
from i3d.tasks.batch.summary import summarise
from i3d.tasks.batch.video_work import Asked, VideoOutcome, run_prepared, windows_ahead
from i3d.tasks.recognizer import Recognizer

EXECUTORS = ("local", "ray")
"""What runs a dataset's videos: this machine, or a Ray cluster (the command line's ``--engine``)."""


@dataclass(frozen=True)
class BatchOptions:
    """How a dataset run goes: what to write, which part of the list, how many helpers.

    ``fusion`` and ``progress`` are this run's own, not a shared part: a training scores with its own fusion
    (:class:`~i3d.tasks.training.options.TrainOptions`) and passes this ``progress`` down to its fine-tuning;
    a video's bars (:class:`~i3d.preprocess.windows.VideoOptions`) and a download's
    (:class:`~i3d.weights.loading.LoadOptions`) are other bars that a command turns on or off apart.
    """

    top_k: int = 5
    fusion: str = "mean"
    features: bool = False  # write per-window 1024-d features per stream
    overwrite: bool = False  # start over in a folder holding results made with other settings
    retry_failed: bool = False  # run failed videos again instead of keeping their records
    shard: tuple[int, int] | None = None  # (K, N): this process takes shard K of N
    workers: int = 0  # processes decoding and preprocessing ahead of the network; 0: inline
    progress: bool = False
    executor: str = "local"  # local: this machine; ray: decoding tasks and model actors on a Ray cluster
    ray: RayOptions | None = None  # with executor "ray" (None: a local cluster, one model actor)
    engine: InitVar[str | None] = None  # the old name of executor, for one release

    def __post_init__(self, engine: str | None) -> None:
        if engine is not None:
            warnings.warn("BatchOptions(engine=...) is now BatchOptions(executor=...)", DeprecationWarning,
                          stacklevel=3)
            object.__setattr__(self, "executor", engine)

    def check(self) -> None:
        """Refuse a worker count no machine could use, an unknown executor, or Ray when it is not installed
        (OptionError, named after the command line's ``--engine``)."""
        most = max(2, available_cores())  # more decoding processes than cores only cost memory
        if not 0 <= self.workers <= most:
            raise OptionError("workers", f"must be between 0 and {most} (this machine's cores), not {self.workers}")
        if self.executor not in EXECUTORS:
            raise OptionError("engine", f"is {self.executor!r}; choose from {', '.join(EXECUTORS)}")
        if self.executor == "ray":
            check_ray(self.ray or RayOptions())

    @property
    def asked(self) -> Asked:
        """What each video's run gives."""
        return Asked(self.top_k, self.fusion, self.features)


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
    options.check()
    recognizer.check(video)  # a bad option would otherwise fail every video, one by one
    started = time.perf_counter()
    labels = _label_indices(dataset, recognizer.categories, label_map)
    settings = settings_of(recognizer, video, fusion=options.fusion, top_k=options.top_k,
                           features=options.features, label_map=label_map)
    prepare_folder(out, settings, options.overwrite)
    mine = shard(dataset.items, *options.shard) if options.shard else dataset.items
    todo, skipped = [], 0
    for item in mine:
        record = read_record(out, item.key, len(recognizer.categories), broken=_warn_rerun)
        if record is not None and not (options.retry_failed and record.get("status") == "failed"):
            skipped += 1
        else:
            todo.append(item)
    stream_names = tuple(s.name for s in recognizer.streams)
    progress = Progress(len(todo), options.progress)
    processed = failed = 0
    outcomes = None
    try:
        if options.executor == "ray":
            outcomes = ray_outcomes(todo, recognizer, video, options.asked, options.ray or RayOptions())
        else:
            outcomes = _local_outcomes(todo, stream_names, recognizer, video, options)
        for outcome in outcomes:
            for note in outcome.notes:  # a worker's warning, shown here once
                warnings.warn(note, stacklevel=2)
            item = outcome.item
            label_index = labels.get(item.label) if item.label is not None else None
            with _written(out, lambda: processed):
                record = record_outcome(out, outcome, label_index, video, settings)
            failed += record["status"] == "failed"
            processed += 1
            progress.update(record["status"] == "failed")
            if on_record is not None:
                on_record(record)
    finally:
        if outcomes is not None:
            outcomes.close()  # whatever stopped the loop, end the work in flight now (and a Ray cluster started here)
        progress.close()
    with _written(out, lambda: processed):
        summary = summarise(dataset, out, recognizer.categories, labels, settings)
    return BatchReport(processed, skipped, failed, summary, time.perf_counter() - started, summary["not_run"])


@contextlib.contextmanager
def _written(out: Path, processed: Callable[[], int]) -> Iterator[None]:
    """An output that cannot be written (a full disk, a quota, a read-only remount) as the folder's OptionError:
    every record already written stays (each is written whole or not at all), so a rerun resumes."""
    try:
        yield
    except OSError as err:
        raise OptionError("out", f"{out}: cannot be written ({reason(err)}); the {processed()} video(s) recorded "
                                 "in this run are kept: free space (or give another folder) and run again to "
                                 "resume") from None


def _warn_rerun(broken: str) -> None:
    warnings.warn(f"{broken}; running the video again", stacklevel=5)  # run_batch's caller


def _local_outcomes(items: list[VideoItem], stream_names: tuple[str, ...], recognizer: Recognizer,
                    video: VideoOptions, options: BatchOptions) -> Iterator[VideoOutcome]:
    """Each item's outcome, the network running in this process."""
    for item, prepared in windows_ahead(items, stream_names, video, options.workers):
        yield run_prepared(recognizer, item, prepared, options.asked)
