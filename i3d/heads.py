"""A head: the user's own classes on top of I3D's frozen 1024-d features.

One linear layer per stream (weights, biases, and the feature mean and scale it was
trained on), fused over the streams as the Kinetics logits are. A head lives in a folder::

    head.npz    float32 arrays per stream: <stream>.weight (classes, 1024), <stream>.bias,
                <stream>.mean, <stream>.scale; read with allow_pickle=False
    head.json   the classes, the streams with each one's weight set and its sha256, the
                feature settings that decide the numbers, the training's record, and
                the sha256 of head.npz; head.npz in turn holds ``meta.sha256``, the sha256
                of head.json's content (:func:`content_sha256`), so neither file can be
                edited alone

A head is only used on features made the way its training features were: the same
streams, the same weight sets (by sha256) and the same feature settings. Anything else
is refused with one line naming the difference (OptionError); a ``head.npz`` that does
not match its recorded sha256, or a head.json whose content does not match the one head.npz
records, is refused as corrupt (WeightsError). Both files are checked against an explicit
schema (:func:`check_meta`, :func:`check_arrays`) before anything is built from them: anything
else is one line naming the file and the field (InputError).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from i3d.errors import InputError, OptionError, WeightsError
from i3d.files import atomic_path, read_regular_file

HEAD_FORMAT = 2
"""Format 2 adds ``meta.sha256`` to head.npz; format 1 heads (no such array) are still read, schema-checked."""
READ_FORMATS = (1, 2)
STREAMS = ("rgb", "flow")
META_ARRAY = "meta.sha256"
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

    def meta(self) -> dict:
        """head.json's content, but for the sha256 of head.npz."""
        return {"format": HEAD_FORMAT, "classes": list(self.classes), "streams": list(self.streams),
                "weight_sets": self.weight_sets, "settings": self.settings, "training": self.record,
                "fine_tuned": self.fine_tuned}

    def save(self, folder: str | os.PathLike) -> Path:
        """Write head.npz (with the sha256 of head.json's content), then head.json naming head.npz's sha256
        (each atomically); returns the folder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = self.meta()
        buffer = io.BytesIO()
        arrays = {f"{stream}.{name}": np.ascontiguousarray(getattr(head, name), np.float32)
                  for stream, head in self.streams.items() for name in ARRAYS}
        arrays.update({f"{stream}.top.{key}": np.ascontiguousarray(array, np.float32)
                       for stream, top in self.tops.items() for key, array in top.items()})
        arrays[META_ARRAY] = np.frombuffer(bytes.fromhex(content_sha256(meta)), np.uint8)
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        with atomic_path(folder / "head.npz", suffix=".npz") as tmp:
            tmp.write_bytes(data)
        meta["head_npz_sha256"] = hashlib.sha256(data).hexdigest()
        with atomic_path(folder / "head.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Head:
        """A head folder (or its head.json) read and verified: schema, sha256s and shapes, before any use."""
        folder = Path(folder)
        if folder.name == "head.json":
            folder = folder.parent
        meta = _read_json(folder / "head.json")
        check_meta(meta, folder / "head.json")
        data = _read_bytes(folder / "head.npz")
        if hashlib.sha256(data).hexdigest() != meta["head_npz_sha256"]:
            raise WeightsError(f"{folder / 'head.npz'}: does not match the sha256 in head.json (changed or "
                               "corrupt); train the head again")
        arrays = _read_arrays(data, folder / "head.npz")
        check_arrays(meta, arrays, folder / "head.npz")
        if META_ARRAY in arrays and arrays[META_ARRAY].tobytes().hex() != content_sha256(meta):
            raise WeightsError(f"{folder / 'head.json'}: its content (classes, streams, weight sets or settings) "
                               "does not match the sha256 head.npz records (edited or corrupt); train the head again")
        streams = meta["streams"]
        heads = {s: StreamHead(*(arrays[f"{s}.{name}"].astype(np.float32) for name in ARRAYS)) for s in streams}
        tops = {s: {key[len(f"{s}.top."):]: arrays[key].astype(np.float32) for key in arrays
                    if key.startswith(f"{s}.top.")} for s in streams}
        head = cls(tuple(meta["classes"]), heads, {s: dict(meta["weight_sets"][s]) for s in streams},
                   dict(meta["settings"]), dict(meta.get("training") or {}), folder,
                   {s: top for s, top in tops.items() if top})
        _check_values(head, folder / "head.npz")
        return head


# ------------------------------------------------------------------------------------------ the schema

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MIXED_5C_UNITS = (  # (unit, kernel, channels in, channels out): DeepMind's Mixed_5c on Mixed_5b's 832 channels
    ("Mixed_5c.Branch_0.Conv3d_0a_1x1", 1, 832, 384),
    ("Mixed_5c.Branch_1.Conv3d_0a_1x1", 1, 832, 192),
    ("Mixed_5c.Branch_1.Conv3d_0b_3x3", 3, 192, 384),
    ("Mixed_5c.Branch_2.Conv3d_0a_1x1", 1, 832, 48),
    ("Mixed_5c.Branch_2.Conv3d_0b_3x3", 3, 48, 128),
    ("Mixed_5c.Branch_3.Conv3d_0b_1x1", 1, 832, 128),
)


def content_sha256(meta: Mapping) -> str:
    """Hex sha256 of head.json's content but for ``head_npz_sha256``, as canonical JSON (sorted keys, no spaces)."""
    covered = json.loads(json.dumps({k: v for k, v in meta.items() if k != "head_npz_sha256"}))
    return hashlib.sha256(json.dumps(covered, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def top_shapes(classes: int) -> dict[str, tuple[int, ...]]:
    """The arrays (``<layer>.<i>``) and shapes of a ``mixed_5c`` fine-tuned top for ``classes`` classes."""
    shapes: dict[str, tuple[int, ...]] = {}
    for unit, k, n_in, n_out in _MIXED_5C_UNITS:
        shapes[f"{unit}.conv_3d.0"] = (k, k, k, n_in, n_out)
        shapes.update({f"{unit}.batch_norm.{i}": (n_out,) for i in range(3)})  # beta, moving mean and variance
    shapes["Logits.Conv3d_0c_1x1.conv_3d.0"] = (1, 1, 1, FEATURE_DIMS, classes)
    shapes["Logits.Conv3d_0c_1x1.conv_3d.1"] = (classes,)
    return shapes


def _is_number(value: object) -> bool:
    """A finite JSON number (an integer too large for a float is not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e300


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 31


_SETTINGS = {"fps": (_is_number, "a number"), "window": (lambda v: v is None or _is_count(v), "a count or null"),
             "stride": (lambda v: v is None or _is_count(v), "a count or null"),
             "crop": (lambda v: isinstance(v, str), "a string"),
             "flow_algorithm": (lambda v: isinstance(v, str), "a string")}


def check_meta(meta: Mapping, path: Path) -> None:
    """Refuse a head.json that is not this schema (InputError naming the field), before anything is read by it.

    format 1 or 2; classes: at least 2 distinct non-empty strings without control characters; streams: 1 or 2
    distinct of rgb, flow;
    weight_sets: exactly the streams, each ``{"set": name, "index_sha256": 64 hex}``; settings: every
    checked setting with its type (precision optional, a string), or ``{}`` in format 2 only (a head made
    in code for any feature settings, pinned by head.npz's sha256 of this content); training: an object;
    fine_tuned: null or "mixed_5c"; head_npz_sha256: 64 hex.
    """
    def bad(field: str, want: str) -> InputError:
        return InputError(f"{path}: '{field}' must be {want}; not a head this version can read "
                          "(train the head again)")

    if meta.get("format") not in READ_FORMATS:
        raise InputError(f"{path}: head format {str(meta.get('format'))[:20]!r}; this version reads "
                         f"{' and '.join(map(str, READ_FORMATS))} (train the head again with this version)")
    classes = meta.get("classes")
    if not (isinstance(classes, list) and all(isinstance(c, str) and c.strip() and c.isprintable() for c in classes)
            and len(classes) >= 2 and len(set(classes)) == len(classes)):
        raise bad("classes", "a list of at least 2 distinct class names, each non-empty, without line breaks or "
                             "control characters")
    streams = meta.get("streams")
    if not (isinstance(streams, list) and 1 <= len(streams) <= len(STREAMS) and set(streams) <= set(STREAMS)
            and len(set(streams)) == len(streams)):
        raise bad("streams", f"a list of distinct streams among {', '.join(STREAMS)}")
    sets = meta.get("weight_sets")
    if not (isinstance(sets, dict) and set(sets) == set(streams)):
        raise bad("weight_sets", f"an object naming a weight set for each of {', '.join(streams)}")
    for stream, entry in sets.items():
        if not (isinstance(entry, dict) and set(entry) == {"set", "index_sha256"} and isinstance(entry["set"], str)
                and isinstance(entry["index_sha256"], str) and _SHA256.fullmatch(entry["index_sha256"])):
            raise bad(f"weight_sets.{stream}", '{"set": a weight set name, "index_sha256": 64 hex digits}')
    _check_settings(meta, bad)
    if not isinstance(meta.get("training", {}), dict):
        raise bad("training", "an object")
    if meta.get("fine_tuned") not in (None, "mixed_5c"):
        raise bad("fine_tuned", 'null or "mixed_5c"')
    if not (isinstance(meta.get("head_npz_sha256"), str) and _SHA256.fullmatch(meta["head_npz_sha256"])):
        raise bad("head_npz_sha256", "the 64 hex digits of head.npz's sha256")


def _check_settings(meta: Mapping, bad: Callable[[str, str], InputError]) -> None:
    settings = meta.get("settings")
    if not isinstance(settings, dict):
        raise bad("settings", "an object of the feature settings")
    if not settings and meta["format"] >= 2:
        return  # a head made in code for any feature settings: head.npz's sha256 of this content pins the {}
    for name, (valid, want) in _SETTINGS.items():
        if name not in settings or not valid(settings[name]):
            raise bad(f"settings.{name}", want)
    if not isinstance(settings.get("precision", "fp32"), str):
        raise bad("settings.precision", "a string")


def check_arrays(meta: Mapping, arrays: Mapping[str, np.ndarray], path: Path) -> None:
    """Refuse a head.npz whose arrays are not exactly what head.json describes (names, shapes, float dtypes):
    a linear head has no top arrays, a ``mixed_5c`` one every stream's whole top, and format 2 its
    ``meta.sha256`` (InputError, before any network is built)."""
    n = len(meta["classes"])
    want: dict[str, tuple[int, ...]] = {}
    for stream in meta["streams"]:
        want.update({f"{stream}.weight": (n, FEATURE_DIMS), f"{stream}.bias": (n,),
                     f"{stream}.mean": (FEATURE_DIMS,), f"{stream}.scale": (FEATURE_DIMS,)})
        if meta.get("fine_tuned") == "mixed_5c":
            want.update({f"{stream}.top.{key}": shape for key, shape in top_shapes(n).items()})
    if meta["format"] >= 2:
        want[META_ARRAY] = (32,)
    extra, missing = sorted(set(arrays) - set(want)), sorted(set(want) - set(arrays))
    if extra or missing:
        what = f"holds {extra[0]!r}" if extra else f"lacks {missing[0]!r}"
        kind = "fine-tuned (mixed_5c)" if meta.get("fine_tuned") else "linear"
        raise InputError(f"{path}: {what}, which head.json's {kind} head for {'+'.join(meta['streams'])} "
                         f"{'does not have' if extra else 'needs'}; train the head again")
    for key, shape in want.items():
        array = arrays[key]
        kind = "u" if key == META_ARRAY else "f"
        if array.shape != shape or array.dtype.kind != kind:
            raise InputError(f"{path}: {key} is {array.dtype} {array.shape}, not {'uint8' if kind == 'u' else 'float'} "
                             f"{shape} for {n} classes; train the head again")


def _read_arrays(data: bytes, path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a head's arrays ({type(err).__name__}: {str(err)[:80]}); "
                         "train the head again") from None


def _check_values(head: Head, path: Path) -> None:
    for stream, part in head.streams.items():
        if not all(np.isfinite(a).all() for a in (part.weight, part.bias, part.mean, part.scale)) or \
                not (part.scale > 0).all():
            raise InputError(f"{path}: the {stream} head holds values that are not finite (or a zero scale); "
                             "train the head again")
    for stream, top in head.tops.items():
        if not all(np.isfinite(a).all() for a in top.values()):
            raise InputError(f"{path}: the {stream} fine-tuned top holds values that are not finite; "
                             "train the head again")


def _read_bytes(path: Path) -> bytes:
    return read_regular_file(path, MAX_HEAD_BYTES, "a head file (train one with `i3d train`)")


def _read_json(path: Path) -> dict:
    data = _read_bytes(path)
    try:
        meta = json.loads(data)
    except (ValueError, RecursionError) as err:  # RecursionError: nested deeper than the parser's stack
        why = "nested too deeply" if isinstance(err, RecursionError) else "not JSON"
        raise InputError(f"{path}: {why}; not a head this version can read (train the head again)") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: not a head description (a JSON object); train the head again")
    return meta
