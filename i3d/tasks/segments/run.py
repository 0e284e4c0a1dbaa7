"""``i3d segments``: a video or a dataset into segments per class, subtitles, timelines and, with ground truth, mAP.

The windows run as :func:`i3d.tasks.batch.run.run_batch` runs them (resumable,
shardable, workers, Ray), into the same folder with their logits kept, so the
segments can be cut again with other thresholds in seconds. Then, per video
(``DIR/segments/<key>.*``): ``.scores.npz`` (each 25 fps frame's time and score
per class, and the class names), ``.csv``, ``.srt`` and ``.vtt`` (the segments)
and ``.timeline.png``; for the whole run ``DIR/segments.json`` in ActivityNet's
results form, and with ground truth ``DIR/evaluation.json`` (see
:mod:`i3d.tasks.segments.evaluation`). A video's id there is its key without its extension
(``v_x`` for ``v_x.mp4``), as ActivityNet and THUMOS name their videos.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np

from i3d.errors import InputError
from i3d.files import atomic_path
from i3d.inputs.dataset_items import Dataset, VideoItem
from i3d.preprocess.windows import SHORT_STRIDE, SHORT_WINDOW, VideoOptions
from i3d.report.subtitles import segments_csv, srt, webvtt
from i3d.results import Segment, WindowSpan
from i3d.tasks.batch.records import path_under, read_record
from i3d.tasks.batch.run import BatchOptions, BatchReport, run_batch
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.segments.cut import (FrameScores, SegmentOptions, find_segments, frame_scores, fused_window_logits,
                                    smoothed)
from i3d.tasks.segments.evaluation import Evaluation, Span, evaluate, read_truth, results_json


@dataclass
class SegmentsReport:
    """What :func:`run_segments` found: the batch run, each video's segments by id, and the evaluation."""

    batch: BatchReport
    segments: dict[str, list[Segment]]
    spans: dict[str, tuple[float, float]]  # each video's scored part: its first window's start, last window's end
    evaluation: Evaluation | None
    files: dict[str, str]  # what was written for the run: segments, evaluation


def video_id(key: str) -> str:
    """A video's id in segments.json: its key without its extension."""
    return str(PurePosixPath(key).with_suffix(""))


def single_video(path: str | os.PathLike) -> Dataset:
    """A dataset of one video (its key its file name)."""
    path = Path(path).absolute()
    return Dataset((VideoItem(path.name, path, None),), (), path.parent, "folder")


def load_scores(out: Path, record: dict, categories: tuple[str, ...], fusion: str, head: bool,
                fps: float) -> FrameScores:
    """A finished video's frame scores from the window logits its batch run kept."""
    logits = []
    for relative in record["features"].values():
        name = relative[:-len(".npy")] + (".head_logits.npy" if head else ".logits.npy")
        logits.append(np.load(out / name, allow_pickle=False))
    sidecar_name = next(iter(record["features"].values())).rsplit(".", 2)[0] + ".json"
    sidecar = json.loads((out / sidecar_name).read_text(encoding="utf-8"))
    spans = [WindowSpan(w["index"], w["first_frame"], w["frames"], w["start"], w["end"]) for w in sidecar["windows"]]
    fused = fused_window_logits(logits, fusion)
    if fused.shape[-1] != len(categories):
        raise InputError(f"{out / sidecar_name}: logits over {fused.shape[-1]} classes, not {len(categories)}")
    return frame_scores(spans, fused, fps)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_video_outputs(out: Path, key: str, scores: FrameScores, categories: tuple[str, ...],
                        segments: list[Segment], options: SegmentOptions, chart: bool = True) -> None:
    """A video's scores, segments as CSV/SRT/WebVTT and its timeline, under ``out/segments/``."""
    base = path_under(out, "segments", key, "")
    base.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(base.parent / f"{base.name}.scores.npz", suffix=".npz") as tmp:
        np.savez_compressed(tmp, times=scores.times, scores=scores.scores, classes=np.array(categories))
    _write_text(base.parent / f"{base.name}.csv", segments_csv(segments, video_id(key)))
    _write_text(base.parent / f"{base.name}.srt", srt(segments))
    _write_text(base.parent / f"{base.name}.vtt", webvtt(segments))
    if chart:
        from i3d.report.segment_chart import plot_segments  # matplotlib: only when a chart is drawn

        plot_segments(scores.times, smoothed(scores, options.smooth).astype(np.float32), categories, segments,
                      base.parent / f"{base.name}.timeline.png", title=key)


def cut_segments(out: Path, dataset: Dataset, categories: tuple[str, ...], options: SegmentOptions, *,
                 fusion: str = "mean", head: bool = False, fps: float = 25.0,
                 charts: bool = True) -> tuple[dict[str, list[Segment]], dict[str, tuple[float, float]]]:
    """Segments of every finished video of ``dataset`` in ``out`` (its per-video files written), and the part
    of each that was scored, by video id."""
    found, spans = {}, {}
    for item in dataset.items:
        record = read_record(out, item.key, len(categories))
        if record is None or record.get("status") != "ok" or not record.get("features"):
            continue
        scores = load_scores(out, record, categories, fusion, head, fps)
        segments = find_segments(scores, categories, options)
        write_video_outputs(out, item.key, scores, categories, segments, options, charts)
        found[video_id(item.key)] = segments
        spans[video_id(item.key)] = (float(scores.times[0]), scores.end)
    return found, spans


def check_ids(dataset: Dataset) -> None:
    """Two videos whose keys differ only in their extension would share an id: refuse (InputError)."""
    seen: dict[str, str] = {}
    for item in dataset.items + dataset.missing:
        other = seen.setdefault(video_id(item.key), item.key)
        if other != item.key:
            raise InputError(f"{item.path}: {item.key} and {other} would both be video {video_id(item.key)} in "
                             "segments.json; rename one")


def score_segments(segments: dict[str, list[Segment]], truth: tuple[list[Span], list[str]]) -> Evaluation:
    """AP and mAP of ``segments`` against ``truth`` (segments and videos, as :func:`read_truth` gives them)."""
    truth, truth_videos = truth
    predicted = [Span(video, s.label, s.start, s.end, s.score) for video, rows in segments.items() for s in rows]
    return evaluate(truth, predicted, videos=list(segments), truth_videos=truth_videos)


def run_segments(dataset: Dataset, out: str | os.PathLike, recognizer: Recognizer, *,
                 video: VideoOptions = VideoOptions(window=SHORT_WINDOW, stride=SHORT_STRIDE),
                 options: BatchOptions = BatchOptions(), segment: SegmentOptions = SegmentOptions(),
                 label_map: dict[str, str] | None = None, ground_truth: str | os.PathLike | None = None,
                 charts: bool = True) -> SegmentsReport:
    """Run the windows of every video into ``out`` (resumably), then cut, write and (with ground truth) score
    the segments of every finished video."""
    out = Path(out)
    check_ids(dataset)
    segment.check(recognizer.categories)
    truth = read_truth(ground_truth) if ground_truth is not None else None  # refused before any video runs
    batch = run_batch(dataset, out, recognizer, video=video, label_map=label_map,
                      options=replace(options, features=True))
    found, spans = cut_segments(out, dataset, recognizer.categories, segment, fusion=options.fusion,
                         head=recognizer.head is not None, fps=video.fps, charts=charts)
    files = {"segments": str(out / "segments.json")}
    with atomic_path(out / "segments.json") as tmp:
        tmp.write_text(json.dumps(results_json(found), indent=1), encoding="utf-8")
    evaluation = None
    if truth is not None:
        evaluation = score_segments(found, truth)
        files["evaluation"] = str(out / "evaluation.json")
        with atomic_path(out / "evaluation.json") as tmp:
            tmp.write_text(json.dumps(evaluation.as_json(), indent=1), encoding="utf-8")
    return SegmentsReport(batch, found, spans, evaluation, files)
