"""One record per video in a dataset run's folder: where it lives, reading it back, writing it last.

``results/<key>.json`` is written atomically once the video is done (ok or failed), after its
features (``features/<key>.<stream>.npy`` and their sidecar ``features/<key>.json``), so a record
means the video is finished.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from i3d.errors import I3DError, InputError
from i3d.files import atomic_path
from i3d.inputs.dataset_items import VideoItem, key_problem
from i3d.preprocess.windows import VideoOptions
from i3d.results import Features, Result
from i3d.tasks.batch.video_work import VideoOutcome

MAX_RECORD_BYTES = 64 << 20
"""A record larger than this is broken (a 10-hour video's record, with its windows, is about 20 MB)."""


def record_path(out: Path, key: str) -> Path:
    return path_under(out, "results", key, ".json")


def path_under(out: Path, folder: str, key: str, suffix: str) -> Path:
    """``out/folder/<key><suffix>``, for a key that cannot leave ``out`` (the dataset readers refuse the others
    with their line; this holds for a dataset made in code too)."""
    problem = key_problem(key)
    if problem is not None:
        raise InputError(f"{problem}; give the video a key inside the dataset")
    return out / folder / f"{key}{suffix}"


def read_record(out: Path, key: str, classes: int | None = None,
                broken: Callable[[str], None] | None = None) -> dict | None:
    """A finished video's record, or None: when there is none, or when its file is there but is not a record
    this version wrote (then the video runs again, and ``broken``, when given, is told why in one line)."""
    path = record_path(out, key)
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return _broken(broken, f"{path}: is over {MAX_RECORD_BYTES >> 20} MiB")
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as err:
        return _broken(broken, f"{path}: does not parse ({type(err).__name__})")
    problem = record_problem(record, key, classes)
    return record if problem is None else _broken(broken, f"{path}: {problem}")


def _broken(tell: Callable[[str], None] | None, why: str) -> None:
    if tell is not None:
        tell(why)
    return None


def record_problem(record, key: str, classes: int | None = None) -> str | None:
    """What makes ``record`` not a video's record for ``key`` (the fields summaries and training read, class
    numbers below ``classes``), or None."""
    limit = classes if classes is not None else 1 << 62
    if not isinstance(record, dict):
        return "is not a JSON object"
    if record.get("key") != key:
        return f"is the record of {str(record.get('key'))[:80]!r}, not of {key[:80]!r}"
    if record.get("status") not in ("ok", "failed") or not isinstance(record.get("path"), str):
        return "has no status 'ok'/'failed' or no path"
    index = record.get("label_index")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < limit):
        return f"has label_index {str(index)[:40]}, not a class number"
    if not isinstance(record.get("label"), (str, type(None))):
        return "has a label that is not text"
    top = record.get("top")
    if not isinstance(top, list) or not all(isinstance(p, dict) and isinstance(p.get("index"), int)
                                            and 0 <= p["index"] < limit and isinstance(p.get("label"), str)
                                            for p in top):
        return "has a top list that is not predictions"
    if record["status"] == "ok":
        if not top or not isinstance(record.get("logits"), list):
            return "is ok but has no predictions or logits"
        features = record.get("features", {})
        if not isinstance(features, dict) or not all(
                isinstance(v, str) and key_problem(v.removeprefix("features/")) is None for v in features.values()):
            return "names features outside its folder"
    elif not isinstance(record.get("error"), str):
        return "failed without an error"
    return None


def write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data) + "\n")


def _prediction(p) -> dict:
    return {"index": p.index, "label": p.label, "probability": p.probability, "logit": p.logit}


def _ok_record(item: VideoItem, label_index: int | None, result: Result, seconds: float,
               features: dict[str, str] | None) -> dict:
    record = {"key": item.key, "path": str(item.path), "label": item.label, "label_index": label_index,
              "status": "ok", "error": None,
              "top": [_prediction(p) for p in result.top],
              "logits": [round(float(x), 6) for x in result.logits],
              "windows": [{"index": w.span.index, "start": round(w.span.start, 3), "end": round(w.span.end, 3),
                           "frames": w.span.frames, "top": [_prediction(p) for p in w.top]} for w in result.windows],
              "frames": result.frames, "seconds": round(seconds, 3)}
    if features is not None:
        record["features"] = features
    return record


def _failed_record(item: VideoItem, label_index: int | None, error: str, seconds: float) -> dict:
    return {"key": item.key, "path": str(item.path), "label": item.label, "label_index": label_index,
            "status": "failed", "error": error, "top": [], "logits": None, "windows": [], "frames": {},
            "seconds": round(seconds, 3)}


def _write_features(out: Path, item: VideoItem, features: Features, video: VideoOptions,
                    settings: dict) -> dict[str, str]:
    """Each stream's (W, 1024) features and (W, classes) logits as .npy, with a JSON sidecar; returns the paths."""
    base = path_under(out, "features", item.key, "")
    written = {}
    for stream, array in features.features.items():
        path = base.parent / f"{base.name}.{stream}.npy"
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, array)  # float32 already (features_of_windows)
        written[stream] = str(path.relative_to(out))
        logits_path = base.parent / f"{base.name}.{stream}.logits.npy"
        with atomic_path(logits_path, suffix=".npy") as tmp:
            np.save(tmp, features.logits[stream])
        if features.head_logits is not None:
            with atomic_path(base.parent / f"{base.name}.{stream}.head_logits.npy", suffix=".npy") as tmp:
                np.save(tmp, features.head_logits[stream])
    _, stride = video.window_and_step()
    sidecar = {"key": item.key, "path": str(item.path), "fps": video.fps, "window": video.window,
               "stride": stride if video.window is not None else None, "crop": video.crop,
               "flow_algorithm": video.flow_algorithm if "flow" in features.features else None,
               "start": video.start, "end": video.end, "max_frames": video.max_frames,
               "windows": [{"index": w.index, "first_frame": w.first_frame, "frames": w.frames,
                            "start": round(w.start, 3), "end": round(w.end, 3)} for w in features.windows],
               "features": written, "shape": {s: list(a.shape) for s, a in features.features.items()},
               "weights": settings["weights"], "backend": settings["backend"], "precision": settings["precision"],
               "i3d_version": settings["i3d_version"]}
    write_json(base.parent / f"{base.name}.json", sidecar)
    return written


def record_outcome(out: Path, outcome: VideoOutcome, label_index: int | None, video: VideoOptions,
                   settings: dict) -> dict:
    """Write a video's features (if any), then its record, the last thing written for it; returns the record.

    The one writer of both executors: whatever ran the network, a video's files are made here.
    """
    mark = time.perf_counter()
    item, error = outcome.item, outcome.error
    if error is None:
        try:
            written = (_write_features(out, item, outcome.features, video, settings)
                       if outcome.features is not None else None)
            record = _ok_record(item, label_index, outcome.result, outcome.seconds + time.perf_counter() - mark,
                                written)
        except I3DError as err:
            error = str(err)
    if error is not None:
        record = _failed_record(item, label_index, error, outcome.seconds + time.perf_counter() - mark)
    if outcome.notes:
        record["warnings"] = list(outcome.notes)
    write_json(record_path(out, item.key), record)
    return record
