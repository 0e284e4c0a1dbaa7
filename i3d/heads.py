"""A head: the user's own classes on top of I3D's frozen 1024-d features.

One linear layer per stream (weights, biases, and the feature mean and scale it was
trained on), fused over the streams as the Kinetics logits are. A head lives in a folder::

    head.npz    float32 arrays per stream: <stream>.weight (classes, 1024), <stream>.bias,
                <stream>.mean, <stream>.scale; read with allow_pickle=False
    head.json   the classes, the streams with each one's weight set and its sha256, the
                feature settings that decide the numbers, the training's record, and
                the sha256 of head.npz

A head is only used on features made the way its training features were: the same
streams, the same weight sets (by sha256) and the same feature settings. Anything else
is refused with one line naming the difference (OptionError); a ``head.npz`` that does
not match its recorded sha256 is refused as corrupt (WeightsError).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i3d.errors import OptionError, WeightsError
from i3d.files import atomic_path, read_regular_file

HEAD_FORMAT = 1
ARRAYS = ("weight", "bias", "mean", "scale")
FEATURE_DIMS = 1024
CHECKED_SETTINGS = ("fps", "window", "stride", "crop", "flow_algorithm")
"""The feature settings a run must share with a head's training (flow_algorithm only with a flow stream)."""
MAX_HEAD_BYTES = 64 << 20
"""A head.npz or head.json larger than this is refused unread (a 1000-class two-stream head is 8 MB; a
fine-tuned one adds 11 MB of Mixed_5c per stream)."""


@dataclass(frozen=True)
class StreamHead:
    """One stream's linear layer on standardised features: logits = ((x - mean) / scale) @ weight.T + bias."""

    weight: np.ndarray  # float32 (classes, 1024)
    bias: np.ndarray  # float32 (classes,)
    mean: np.ndarray  # float32 (1024,)
    scale: np.ndarray  # float32 (1024,), no zeros

    def logits(self, features: np.ndarray) -> np.ndarray:
        """float32 logits (..., classes) of features (..., 1024)."""
        x = (np.asarray(features, np.float32) - self.mean) / self.scale
        return (x @ self.weight.T + self.bias).astype(np.float32)


@dataclass(frozen=True)
class Head:
    """The user's classes, one :class:`StreamHead` per stream, and what the features must be."""

    classes: tuple[str, ...]
    streams: dict[str, StreamHead]
    weight_sets: dict[str, dict]  # stream -> {"set": name, "index_sha256": ...}
    settings: dict  # the feature settings (CHECKED_SETTINGS, and the precision they were computed in)
    record: dict = field(default_factory=dict)  # how it was trained: C, scores, counts, version
    path: Path | None = None
    tops: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    """With ``--fine-tune mixed_5c``: per stream, the trained Mixed_5c and logits layer weights by
    ``<layer>.<i>``; that stream's features then come from the network with this top, and its
    :class:`StreamHead` is the trained logits layer (mean 0, scale 1)."""

    def logits(self, stream: str, features: np.ndarray) -> np.ndarray:
        return self.streams[stream].logits(features)

    def fingerprint(self) -> str:
        """Hex sha256 of the classes and every array: what a batch folder's settings record for the head."""
        digest = hashlib.sha256(json.dumps(list(self.classes)).encode())
        for stream in sorted(self.streams):
            for name in ARRAYS:
                digest.update(np.ascontiguousarray(getattr(self.streams[stream], name), np.float32).tobytes())
        for stream in sorted(self.tops):
            for key in sorted(self.tops[stream]):
                digest.update(f"{stream}.top.{key}".encode())
                digest.update(np.ascontiguousarray(self.tops[stream][key], np.float32).tobytes())
        return digest.hexdigest()

    @property
    def fine_tuned(self) -> str | None:
        """The block fine-tuned below the logits (``mixed_5c``), or None for a linear head."""
        return "mixed_5c" if self.tops else None

    def check_streams(self, weight_sets: Mapping[str, tuple[str, str]]) -> None:
        """Refuse a run whose streams or weight sets ((name, index sha256) by stream) are not the head's."""
        where = self.path or "the head"
        if set(weight_sets) != set(self.streams):
            raise OptionError("head", f"{where} was trained on {'+'.join(self.streams)} features; this run has "
                                      f"{'+'.join(weight_sets)} (use --type to match)")
        for stream, (name, sha256) in weight_sets.items():
            self.check_weight_set(stream, name, sha256)

    def check_weight_set(self, stream: str, name: str, sha256: str) -> None:
        """Refuse a weight set (``name``, index ``sha256``) for ``stream`` other than the head was trained on."""
        want = self.weight_sets[stream]
        if sha256 != want["index_sha256"]:
            raise OptionError("head", f"{self.path or 'the head'} was trained on {stream} features from "
                                      f"{want['set']} (sha256 {want['index_sha256'][:12]}); this run uses {name} "
                                      f"(sha256 {sha256[:12]})")

    def check_settings(self, numbers: Mapping[str, object]) -> None:
        """Refuse feature settings (:meth:`VideoOptions.numbers`) other than the head's training used."""
        for name in CHECKED_SETTINGS:
            if name == "flow_algorithm" and "flow" not in self.streams:
                continue
            if name in self.settings and numbers.get(name) != self.settings[name]:
                raise OptionError("head", f"{self.path or 'the head'} was trained with {name} "
                                          f"{self.settings[name]!r}; this run has {numbers.get(name)!r} "
                                          f"(give the same --{name.replace('_', '-')})")

    def check_precision(self, precision: str) -> None:
        """Warn when the run's precision is not the training features' one: measured on the fewshot clips, an
        fp32 head on bf16 features changed no answer and on int8 features one in 24, so it is allowed."""
        trained = self.settings.get("precision", "fp32")
        if precision != trained:
            warnings.warn(f"{self.path or 'the head'} was trained on {trained} features; this run computes them "
                          f"in {precision}, which can change a close answer (train on {precision} features "
                          "to match)", stacklevel=2)

    def save(self, folder: str | os.PathLike) -> Path:
        """Write head.npz, then head.json naming its sha256 (each atomically); returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        arrays = {f"{stream}.{name}": np.ascontiguousarray(getattr(head, name), np.float32)
                  for stream, head in self.streams.items() for name in ARRAYS}
        arrays.update({f"{stream}.top.{key}": np.ascontiguousarray(array, np.float32)
                       for stream, top in self.tops.items() for key, array in top.items()})
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        with atomic_path(folder / "head.npz", suffix=".npz") as tmp:
            tmp.write_bytes(data)
        meta = {"format": HEAD_FORMAT, "classes": list(self.classes), "streams": list(self.streams),
                "weight_sets": self.weight_sets, "settings": self.settings, "training": self.record,
                "fine_tuned": self.fine_tuned,
                "head_npz_sha256": hashlib.sha256(data).hexdigest()}
        with atomic_path(folder / "head.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Head:
        """A head folder (or its head.json) read and verified."""
        folder = Path(folder)
        if folder.name == "head.json":
            folder = folder.parent
        meta = _read_json(folder / "head.json")
        data = _read_bytes(folder / "head.npz")
        if hashlib.sha256(data).hexdigest() != meta.get("head_npz_sha256"):
            raise WeightsError(f"{folder / 'head.npz'}: does not match the sha256 in head.json (changed or "
                               "corrupt); train the head again")
        try:
            classes = tuple(str(c) for c in meta["classes"])
            streams = list(meta["streams"])
            arrays = np.load(io.BytesIO(data), allow_pickle=False)
            heads = {s: StreamHead(*(np.asarray(arrays[f"{s}.{name}"], np.float32) for name in ARRAYS))
                     for s in streams}
            tops = {s: {key[len(f"{s}.top."):]: np.asarray(arrays[key], np.float32) for key in arrays.files
                        if key.startswith(f"{s}.top.")} for s in streams}
            tops = {s: top for s, top in tops.items() if top}
            head = cls(classes, heads, dict(meta["weight_sets"]), dict(meta["settings"]),
                       dict(meta.get("training") or {}), folder, tops)
        except (KeyError, TypeError, ValueError) as err:
            raise WeightsError(f"{folder}: not a head this version can read ({type(err).__name__}: {err})") from None
        if meta.get("format") != HEAD_FORMAT:
            raise WeightsError(f"{folder}: head format {meta.get('format')!r}; this version reads {HEAD_FORMAT}")
        _check_shapes(head, folder)
        return head


def _check_shapes(head: Head, folder: Path) -> None:
    n = len(head.classes)
    if n < 2 or len(set(head.classes)) != n:
        raise WeightsError(f"{folder}: head.json lists {n} classes, or a class twice; train the head again")
    for stream, part in head.streams.items():
        shapes = (part.weight.shape, part.bias.shape, part.mean.shape, part.scale.shape)
        if shapes != ((n, FEATURE_DIMS), (n,), (FEATURE_DIMS,), (FEATURE_DIMS,)):
            raise WeightsError(f"{folder}: the {stream} head's arrays are {shapes}, not for {n} classes of "
                               f"{FEATURE_DIMS}-d features")
        if not all(np.isfinite(a).all() for a in (part.weight, part.bias, part.mean, part.scale)) or \
                not (part.scale > 0).all():
            raise WeightsError(f"{folder}: the {stream} head holds values that are not finite (or a zero scale)")


def _read_bytes(path: Path) -> bytes:
    return read_regular_file(path, MAX_HEAD_BYTES, "a head file (train one with `i3d train`)")


def _read_json(path: Path) -> dict:
    data = _read_bytes(path)
    try:
        meta = json.loads(data)
    except ValueError:
        raise WeightsError(f"{path}: not JSON; train the head again") from None
    if not isinstance(meta, dict):
        raise WeightsError(f"{path}: not a head description; train the head again")
    return meta
