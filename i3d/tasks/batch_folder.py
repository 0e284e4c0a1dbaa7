"""The output folder of a dataset run: its settings, one record per video, features, and the summary.

An output folder holds::

    settings.json          what decides the numbers (streams, weights, video options...): a rerun must match
    results/<key>.json     one record per video, written atomically once the video is done (ok or failed)
    features/<key>.<stream>.npy + features/<key>.json   per-window features and their sidecar (with features)
    predictions.jsonl      every record, in the dataset's order      } rebuilt from results/ by
    summary.json           counts, accuracy, settings                 } :func:`summarise`, so a kill
    per_class.csv          per-class accuracy                         } at any moment loses nothing
    confusion.png          confusion matrix over the classes present  } (charts: best effort, a warning
    per_class_accuracy.png per-class top-1/top-5 bars                 }  line if they cannot be drawn)

A video's record is the last thing written for it, so a record means the video is finished.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from i3d.errors import I3DError, InputError, OptionError
from i3d.files import atomic_path, reason
from i3d.inputs.dataset_items import Dataset, VideoItem, key_problem
from i3d.preprocess.windows import VideoOptions
from i3d.results import Features, Result
from i3d.tasks.recognizer import Recognizer

CHARTS = ("confusion.png", "per_class_accuracy.png")
"""The charts :func:`summarise` draws beside the tables."""
SETTINGS_FORMAT = 1


def tool_version() -> str:
    """The installed i3d's version, or "unknown" when it runs from a checkout that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("i3d")
    except PackageNotFoundError:
        return "unknown"


def settings_of(recognizer: Recognizer, video: VideoOptions, *, fusion: str = "mean", top_k: int = 5,
                features: bool = False, label_map: dict[str, str] | None = None) -> dict:
    """Everything that changes a video's record: a folder's results are only reused under equal settings."""
    from i3d.preprocess.flow import flow_result_name

    tool = tool_version()
    video_settings = video.numbers()
    video_settings["flow_algorithm"] = flow_result_name(video.flow_algorithm)  # identical engines: one setting
    return {"format": SETTINGS_FORMAT, "streams": [s.name for s in recognizer.streams],
            "weights": {name: {"set": ws.name, "deepmind_name": ws.deepmind_name, "index_sha256": ws.index_sha256}
                        for name, ws in recognizer.weight_sets.items()},
            "backend": recognizer.backend, "precision": recognizer.precision_record(),
            "video": video_settings, "fusion": fusion,
            "top_k": top_k, "features": features, "label_map": label_map or {},
            "i3d_version": tool,
            **_head_settings(recognizer.head)}


def _head_settings(head) -> dict:
    """A head's entry in the settings (none without a head, so a folder made without one keeps its settings)."""
    return {} if head is None else {"head": {"classes": list(head.classes), "sha256": head.fingerprint()}}


def comparable(settings: dict) -> dict:
    """Settings as compared between a folder and a run (the tool version aside)."""
    comparable = {key: value for key, value in settings.items() if key != "i3d_version"}
    if "precision" not in comparable and isinstance(comparable.get("streams"), list):
        # a folder made before precision modes existed ran every stream in float32
        comparable["precision"] = {"asked": "fp32", "used": {name: "fp32" for name in comparable["streams"]}}
    return comparable


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """What differs between a folder's settings and a run's, leaf by leaf: ``video.window 16 there, 32 here``."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key} {json.dumps(a)} there, {json.dumps(b)} here")
    return out


def prepare_folder(out: Path, settings: dict, overwrite: bool) -> None:
    """Make ``out`` or check that its results were made with ``settings``; OptionError when not.

    With ``overwrite`` the old results (and their summary) are removed first. The check and the
    write of ``settings.json`` hold a lock on the folder, so of two runs with other settings started
    together one claims the folder and the other is refused, never both accepted.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = open(out / LOCK_NAME, "a")
    except OSError as err:
        raise OptionError("out", f"{out}: cannot write there ({reason(err)}); give a folder you can write") from None
    with lock:
        _hold(lock)
        path = out / "settings.json"
        if path.is_file():
            try:
                existing = json.loads(path.read_text())
            except (OSError, ValueError, RecursionError):
                existing = None
            if isinstance(existing, dict) and comparable(existing) == comparable(settings):
                return
            if not overwrite:
                differ = differences(comparable(existing if isinstance(existing, dict) else {}), comparable(settings))
                raise OptionError("out", f"{out} holds results made with other settings ({'; '.join(differ[:3])}); "
                                         "use another folder or overwrite=True (--overwrite)")
            import shutil

            for name in ("results", "features"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in ("predictions.jsonl", "summary.json", "per_class.csv") + CHARTS:
                (out / name).unlink(missing_ok=True)
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(settings, indent=2) + "\n")
        except OSError as err:
            raise OptionError("out", f"{out}: cannot write there ({reason(err)}); give a folder you can "
                                     "write") from None


LOCK_NAME = ".settings.lock"
"""Held while a run checks and claims a folder's settings (an empty file, left in place)."""


def _hold(handle) -> None:
    """An exclusive lock on ``handle`` until it is closed (where the platform has flock)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)


def record_path(out: Path, key: str) -> Path:
    return path_under(out, "results", key, ".json")


def path_under(out: Path, folder: str, key: str, suffix: str) -> Path:
    """``out/folder/<key><suffix>``, for a key that cannot leave ``out`` (the dataset readers refuse the others
    with their line; this holds for a dataset made in code too)."""
    problem = key_problem(key)
    if problem is not None:
        raise InputError(f"{problem}; give the video a key inside the dataset")
    return out / folder / f"{key}{suffix}"


def read_record(out: Path, key: str, classes: int | None = None) -> dict | None:
    """A finished video's record, or None (no record, or a broken one: the video runs again)."""
    return load_record(out, key, classes)[0]


def load_record(out: Path, key: str, classes: int | None = None) -> tuple[dict | None, str | None]:
    """(the record, None), or (None, why it is broken) when its file is there but is not a record this
    version wrote (then the video runs again), or (None, None) when there is none."""
    path = record_path(out, key)
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            return None, f"{path}: is over {MAX_RECORD_BYTES >> 20} MiB"
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError, RecursionError) as err:
        return None, f"{path}: does not parse ({type(err).__name__})"
    problem = record_problem(record, key, classes)
    return (record, None) if problem is None else (None, f"{path}: {problem}")


MAX_RECORD_BYTES = 64 << 20
"""A record larger than this is broken (a 10-hour video's record, with its windows, is about 20 MB)."""


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


def _write_json(path: Path, data: dict) -> None:
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


def _write_features(out: Path, item: VideoItem, features, video: VideoOptions, settings: dict) -> dict[str, str]:
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
    _write_json(base.parent / f"{base.name}.json", sidecar)
    return written


def record_outcome(out: Path, item: VideoItem, label_index: int | None, result: Result | None,
                    features: Features | None, error: str | None, seconds: float, video: VideoOptions,
                    settings: dict, notes: tuple[str, ...] = ()) -> dict:
    """Write a video's features (if any), then its record, the last thing written for it; returns the record.

    The one writer of both engines: whatever ran the network, a video's files are made here.
    """
    mark = time.perf_counter()
    if error is None:
        try:
            written = _write_features(out, item, features, video, settings) if features is not None else None
            record = _ok_record(item, label_index, result, seconds + time.perf_counter() - mark, written)
        except I3DError as err:
            error = str(err)
    if error is not None:
        record = _failed_record(item, label_index, error, seconds + time.perf_counter() - mark)
    if notes:
        record["warnings"] = list(notes)
    _write_json(record_path(out, item.key), record)
    return record


def summarise(dataset: Dataset, out: Path, categories: tuple[str, ...], labels: dict[str, int | None],
              settings: dict) -> dict:
    """Rebuild predictions.jsonl, summary.json and per_class.csv from the records in ``out``; returns the summary."""
    records = [r for r in (read_record(out, item.key, len(categories)) for item in dataset.items) if r is not None]
    ok = [r for r in records if r["status"] == "ok"]
    scored = [r for r in ok if r.get("label_index") is not None]
    per_class: dict[int, list[int]] = {}
    for r in scored:
        row = per_class.setdefault(r["label_index"], [0, 0, 0])
        row[0] += 1
        row[1] += r["top"][0]["index"] == r["label_index"]
        row[2] += r["label_index"] in [p["index"] for p in r["top"][:5]]
    confused = Counter((categories[r["label_index"]], r["top"][0]["label"]) for r in scored
                       if r["top"][0]["index"] != r["label_index"])
    unmapped = sorted(label for label, index in labels.items() if index is None)
    summary = {
        "videos": len(dataset.items) + len(dataset.missing), "evaluated": len(records), "ok": len(ok),
        "failed": len(records) - len(ok), "missing": len(dataset.missing),
        "not_run": len(dataset.items) - len(records),
        "labelled": len(scored),
        "top1": sum(row[1] for row in per_class.values()) / len(scored) if scored else None,
        "top5": sum(row[2] for row in per_class.values()) / len(scored) if scored else None,
        "mean_class_accuracy": (float(np.mean([hit / n for n, hit, _ in per_class.values()]))
                                if per_class else None),
        "classes": len(per_class),
        "unmapped_labels": unmapped,
        "unmapped_videos": sum(1 for r in ok if r.get("label") is not None and r.get("label_index") is None),
        "missing_videos": [str(item.path) for item in dataset.missing],
        "failed_videos": [{"path": r["path"], "error": r["error"]} for r in records if r["status"] != "ok"],
        "most_confused": [{"label": a, "predicted": b, "videos": n} for (a, b), n in confused.most_common(10)],
        "settings": settings,
    }
    with atomic_path(out / "predictions.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    _write_json(out / "summary.json", summary)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class_index", "class", "videos", "top1", "top5"])
    for index in sorted(per_class):
        n, top1, top5 = per_class[index]
        writer.writerow([index, categories[index], n, f"{top1 / n:.4f}", f"{top5 / n:.4f}"])
    with atomic_path(out / "per_class.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    rows = [(categories[index], n, top1 / n, top5 / n) for index, (n, top1, top5) in per_class.items()]
    draw_charts(out, [r["label_index"] for r in scored], [r["top"][0]["index"] for r in scored], categories, rows)
    return summary


def draw_charts(out: Path, truth: list[int], predicted: list[int], categories: tuple[str, ...],
                rows: list[tuple[str, int, float, float]]) -> None:
    """confusion.png and per_class_accuracy.png in ``out``, when some videos are labelled; best effort.

    A chart that cannot be drawn (matplotlib missing, disk full) costs one
    warning line; the records and the summary are already written.
    """
    if not truth:
        return
    from i3d.files import warn_not_written

    try:
        from i3d.report.charts import plot_confusion, plot_per_class_accuracy
    except ImportError as err:
        warn_not_written(" and ".join(CHARTS), err)
        return
    for name, draw in ((CHARTS[0], lambda path: plot_confusion(truth, predicted, categories, path)),
                       (CHARTS[1], lambda path: plot_per_class_accuracy(rows, path))):
        try:
            draw(out / name)
        except Exception as err:  # noqa: BLE001 - a chart never breaks a batch
            warn_not_written(name, err)
