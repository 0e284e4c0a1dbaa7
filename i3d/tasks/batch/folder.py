"""A dataset run's output folder, its identity: the settings that decide its numbers, claimed under a lock.

An output folder holds::

    settings.json          what decides the numbers (streams, weights, video options...): a rerun must match
    results/<key>.json     one record per video, written atomically once the video is done (ok or failed)
    features/<key>.<stream>.npy + features/<key>.json   per-window features and their sidecar (with features)
    predictions.jsonl      every record, in the dataset's order      } rebuilt from results/ by
    summary.json           counts, accuracy, settings                 } :func:`i3d.tasks.batch.summary.summarise`,
    per_class.csv          per-class accuracy                         } so a kill at any moment loses nothing
    confusion.png          confusion matrix over the classes present  } (charts: best effort, a warning
    per_class_accuracy.png per-class top-1/top-5 bars                 }  line if they cannot be drawn)

A video's record is the last thing written for it, so a record means the video is finished
(see :mod:`i3d.tasks.batch.records`).
"""

from __future__ import annotations

import json
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from i3d.errors import OptionError
from i3d.files import atomic_path, reason
from i3d.heads import Head
from i3d.preprocess.windows import VideoOptions
from i3d.tasks.batch.charts import CHARTS
from i3d.tasks.recognizer import Recognizer

SETTINGS_FORMAT = 1
LOCK_NAME = ".settings.lock"
"""Held while a run checks and claims a folder's settings (an empty file, left in place)."""
SUMMARY_FILES = ("predictions.jsonl", "summary.json", "per_class.csv") + CHARTS
"""What :func:`i3d.tasks.batch.summary.summarise` rebuilds from the records (removed with them on overwrite)."""


def tool_version() -> str:
    """The installed i3d's version, or "unknown" when it runs from a checkout that is not installed."""
    try:
        return version("i3d")
    except PackageNotFoundError:
        return "unknown"


def settings_of(recognizer: Recognizer, video: VideoOptions, *, fusion: str = "mean", top_k: int = 5,
                features: bool = False, label_map: dict[str, str] | None = None) -> dict:
    """Everything that changes a video's record: a folder's results are only reused under equal settings."""
    from i3d.preprocess.flow import flow_result_name  # loads OpenCV, which a settings check needs not

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


def _head_settings(head: Head | None) -> dict:
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
            for name in ("results", "features"):
                shutil.rmtree(out / name, ignore_errors=True)
            for name in SUMMARY_FILES:
                (out / name).unlink(missing_ok=True)
        try:
            with atomic_path(path) as tmp:
                tmp.write_text(json.dumps(settings, indent=2) + "\n")
        except OSError as err:
            raise OptionError("out", f"{out}: cannot write there ({reason(err)}); give a folder you can "
                                     "write") from None


def _hold(handle) -> None:
    """An exclusive lock on ``handle`` until it is closed (where the platform has flock)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
