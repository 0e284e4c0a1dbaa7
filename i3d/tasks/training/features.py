"""The features a head is fitted on: every video's, through a resumable batch folder (see
:mod:`i3d.tasks.batch`), so a rerun (other head settings, or after a kill) reuses every video already done."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from i3d.errors import InputError, OptionError
from i3d.files import read_regular_file
from i3d.inputs.dataset_items import Dataset, VideoItem
from i3d.preprocess.windows import VideoOptions
from i3d.tasks.batch.folder import comparable, differences, settings_of
from i3d.tasks.batch.records import read_record
from i3d.tasks.batch.run import BatchOptions, run_batch
from i3d.tasks.recognizer import Recognizer


@dataclass(frozen=True)
class Sample:
    """One labelled video's features: per stream (windows x views, 1024)."""

    item: VideoItem
    features: dict[str, np.ndarray]


def _folder_settings(folder: Path) -> dict:
    """The settings.json of an existing features folder ({} when there is none yet)."""
    path = folder / "settings.json"
    if not path.exists():
        return {}
    try:
        return json.loads(read_regular_file(path, 1 << 20, "a features folder's settings"))
    except ValueError as err:
        raise InputError(f"{path}: not JSON ({err}); give a folder written by i3d features") from None


def extract(dataset: Dataset, folder: Path, recognizer: Recognizer, video: VideoOptions,
            batch: BatchOptions, reuse: bool = False) -> list[Sample]:
    """Every video's features, through a resumable batch folder; a video that fails is refused (InputError).

    ``reuse``: ``folder`` is the user's own ``i3d features`` folder: its settings are never overwritten (a
    mismatch is refused) and its ranking settings (top-k, fusion, label map) are kept, as they change no feature.
    """
    label_map = None
    if reuse:
        existing = _folder_settings(folder)
        if existing and not existing.get("features"):
            raise InputError(f"{folder}: holds no features (made by i3d batch without --features); "
                             "give an i3d features folder")
        batch = replace(batch, overwrite=False, top_k=existing.get("top_k", 1), fusion=existing.get("fusion", "mean"))
        label_map = existing.get("label_map") or None
        if existing:
            wanted = settings_of(recognizer, video, fusion=batch.fusion, top_k=batch.top_k, features=True,
                                 label_map=label_map)
            differ = differences(comparable(existing), comparable(wanted))
            if differ:
                raise OptionError("features", f"{folder} holds features made with other settings "
                                              f"({'; '.join(differ[:3])}); give the options it was made with")
    else:
        batch = replace(batch, top_k=1)
    run_batch(dataset, folder, recognizer, video=video, label_map=label_map,
              options=replace(batch, features=True, shard=None, retry_failed=True))
    samples = []
    for item in dataset.items:
        record = read_record(folder, item.key)
        if record is None or record.get("status") != "ok":
            error = "not run" if record is None else record.get("error")
            raise InputError(f"{item.path}: no features ({error}); fix or remove the video")
        feats = {}
        for stream, relative in record["features"].items():
            array = np.load(folder / relative, allow_pickle=False)
            feats[stream] = np.asarray(array, np.float32).reshape(-1, array.shape[-1])
        samples.append(Sample(item, feats))
    return samples
