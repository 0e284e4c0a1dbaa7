"""FVD protocols: the choices each published implementation makes, as named, frozen presets.

FVD numbers from different code do not compare because each makes its own choices
before the network: how frames are resized, how floats become uint8, which frames
of each video, how many videos, the value range handed to the network, and the
covariance's normalisation. Each :class:`Protocol` names one implementation's
choices, read from its code (the README's "FVD protocols" table cites file and
line). ``tfhub`` is the reference (google-research ``frechet_video_distance``) and
the default; its settings are exactly those :func:`~i3d.tasks.fvd.stats.fvd_settings`
always recorded, so statistics and cache entries made before protocols existed
still match it.

Every preset embeds with DeepMind's ``rgb_scratch``: the reference's TF-Hub module
is that checkpoint, and StyleGAN-V's TorchScript, VideoGPT's/TATS'
``i3d_pretrained_400.pt`` and content-debiased-fvd's copy of it are ports of that
module (TATS' ``convert_tf_pretrained.py`` reads ``tfhub.dev/deepmind/i3d-kinetics-400``).
A port's float differences (PyTorch batch norm with eps 1e-5 where the module has
1e-3, another engine's rounding) are not reproduced: we run the module's graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from i3d.errors import OptionError
from i3d.limits import CLIP_SIZE
from i3d.preprocess.legacy_bilinear import resize_bilinear_legacy
from i3d.preprocess.resize_ops import resize_bilinear_half_pixel, resize_short_side_centre_crop
from i3d.tasks.fvd.stats import fvd_settings
from i3d.weights.sets import WeightSet, get_weight_set

DEFAULT_PROTOCOL = "tfhub"
RESIZES = ("tf1-bilinear-224x224", "torch-bilinear-224x224", "torch-bilinear-short-side-224-centre-crop")
TO_UINT8 = ("none", "round", "truncate")
"""How float videos (given with an explicit range) become the uint8 frames a protocol reads: ``none`` keeps
them as float values 0-255 (the reference's graph takes any dtype), ``round`` is ``floor(v + 0.5)`` (StyleGAN-V's
``(x * 127.5 + 128).clamp(0, 255).to(uint8)``), ``truncate`` is ``floor(v)`` (``astype(uint8)``, ``.byte()``)."""
RANGES = ("2x/255-1", "x/255-0.5")
COVARIANCES = ("N-1", "N")


@dataclass(frozen=True)
class ClipRule:
    """Which ``frames`` frames of a video of ``length`` frames: ``start`` ``first`` (frames 0, s, 2s...) or
    ``random`` (a start drawn per video from a seeded generator); ``stride`` s takes every s-th frame; ``bound``
    says how far the random start reaches: ``window`` (0 to L - n*s, the last window that fits) or ``stylegan-v``
    (0 to L - n*s + s - 1, StyleGAN-V's bound)."""

    start: str = "first"
    stride: int = 1
    bound: str = "window"

    def describe(self) -> str:
        what = "first" if self.start == "first" else f"random-start-{self.bound}"
        return what if self.stride == 1 else f"{what}-every-{self.stride}"


@dataclass(frozen=True)
class Protocol:
    """One implementation's choices (see the module docstring); ``real_videos``/``generated_videos``: how many
    videos of each side it uses (the first ones; None: all), fewer warn."""

    name: str
    summary: str
    resize: str
    to_uint8: str
    value_range: str
    real_clips: ClipRule
    generated_clips: ClipRule
    real_videos: int | None
    generated_videos: int | None
    covariance: str
    weights: str = "rgb_scratch"
    seed: int = 0

    def check(self) -> None:
        for option, value, allowed in (("resize", self.resize, RESIZES), ("to_uint8", self.to_uint8, TO_UINT8),
                                       ("value_range", self.value_range, RANGES),
                                       ("covariance", self.covariance, COVARIANCES)):
            if value not in allowed:
                raise OptionError(option, f"must be one of {', '.join(allowed)}, not {value!r}")
        for rule in (self.real_clips, self.generated_clips):
            if rule.start not in ("first", "random") or rule.bound not in ("window", "stylegan-v") \
                    or not isinstance(rule.stride, int) or rule.stride < 1:
                raise OptionError("clips", f"{rule} is not a clip rule")

    @property
    def is_reference(self) -> bool:
        return self.name == DEFAULT_PROTOCOL

    def clips(self, side: str) -> ClipRule:
        """The clip rule of side ``real`` or ``generated``."""
        return self.real_clips if side == "real" else self.generated_clips

    def videos(self, side: str) -> int | None:
        return self.real_videos if side == "real" else self.generated_videos

    def choices(self) -> dict:
        """Every choice, for ``--format json`` and statistics files."""
        return {"name": self.name, "resize": self.resize, "to_uint8": self.to_uint8, "range": self.value_range,
                "real_clips": self.real_clips.describe(), "generated_clips": self.generated_clips.describe(),
                "real_videos": self.real_videos, "generated_videos": self.generated_videos,
                "covariance": self.covariance, "weights": self.weights, "seed": self.seed}

    def model_input(self, frames: np.ndarray) -> np.ndarray:
        """Frames (T, H, W, 3), uint8 or float values 0-255 -> the network's float32 (T, 224, 224, 3)."""
        if self.resize == "tf1-bilinear-224x224":  # the reference graph: 2x/255 - 1 folded to x * f32(2/255) - 1
            return resize_bilinear_legacy(frames, CLIP_SIZE, CLIP_SIZE) * TF_SCALE - np.float32(1)
        if self.value_range == "x/255-0.5":  # VideoGPT: divides by 255 first, resizes, then subtracts 0.5
            unit = np.asarray(frames, np.float32) / np.float32(255)
            return resize_short_side_centre_crop(unit, CLIP_SIZE) - np.float32(0.5)
        resized = resize_bilinear_half_pixel(frames, CLIP_SIZE, CLIP_SIZE)
        return np.float32(2) * resized / np.float32(255) - np.float32(1)  # 2. * x / 255. - 1 in float32


TF_SCALE = np.float32(2 / 255)
"""The reference writes ``2. * x / 255. - 1`` in a TF1 graph, whose optimiser folds the constants: TensorFlow
computes ``x * float32(2/255) - 1`` (tested bit for bit)."""

FIRST = ClipRule()

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("tfhub", "google-research frechet_video_distance (TF-Hub i3d-kinetics-400): the reference",
             resize="tf1-bilinear-224x224", to_uint8="none", value_range="2x/255-1", real_clips=FIRST,
             generated_clips=FIRST, real_videos=None, generated_videos=None, covariance="N-1"),
    Protocol("styleganv", "universome/stylegan-v fvd2048_16f: a random 16-frame window of each real video, "
                          "generated videos from their first frame, 2048 a side, the TorchScript port's resize",
             resize="torch-bilinear-224x224", to_uint8="round", value_range="2x/255-1",
             real_clips=ClipRule("random", 1, "stylegan-v"), generated_clips=FIRST, real_videos=2048,
             generated_videos=2048, covariance="N"),
    Protocol("videogpt", "wilson1yan/VideoGPT scripts/compute_fvd.py: short side to 224 and a centre crop, "
                         "x/255 - 0.5 into the network, a random 16-frame window, 256 a side",
             resize="torch-bilinear-short-side-224-centre-crop", to_uint8="truncate", value_range="x/255-0.5",
             real_clips=ClipRule("random"), generated_clips=ClipRule("random"), real_videos=256,
             generated_videos=256, covariance="N-1"),
    Protocol("cdfvd", "songweige/content-debiased-fvd with its I3D: PyTorch bilinear to 224x224, .byte() "
                      "truncation, a random window of each video (seed 42), 2048 generated videos",
             resize="torch-bilinear-224x224", to_uint8="truncate", value_range="2x/255-1",
             real_clips=ClipRule("random"), generated_clips=ClipRule("random"), real_videos=None,
             generated_videos=2048, covariance="N", seed=42),
)}


def get_protocol(name: str) -> Protocol:
    """The preset called ``name``; OptionError naming the known ones otherwise."""
    try:
        return PROTOCOLS[name]
    except (KeyError, TypeError):
        raise OptionError("protocol", f"must be one of {', '.join(PROTOCOLS)}, not {name!r}") from None


WEIGHT_SETS = {"rgb_scratch": ("rgb", "kinetics")}
"""The DeepMind checkpoints a preset may name, as (stream, pretraining) of our weight sets."""


def protocol_weight_set(protocol: Protocol) -> WeightSet:
    """The weight set a preset embeds with (loaded with the usual offline rules: never random weights)."""
    try:
        return get_weight_set(*WEIGHT_SETS[protocol.weights])
    except KeyError:
        raise OptionError("protocol", f"{protocol.name} needs DeepMind's {protocol.weights}, which this tool "
                                      "cannot load") from None


def protocol_settings(protocol: Protocol, frames: int, ws: WeightSet, precision: str = "fp32") -> dict:
    """What a side's statistics record: the reference's settings exactly as they always were, or, for another
    protocol, those with its name and every choice that changes the embeddings or the covariance."""
    settings = fvd_settings(frames, ws, precision)
    if protocol.is_reference:
        return settings
    clips = f"real {protocol.real_clips.describe()}, generated {protocol.generated_clips.describe()}"
    return {**settings, "protocol": protocol.name, "clips": clips, "resize": protocol.resize,
            "range": protocol.value_range, "covariance": protocol.covariance, "seed": protocol.seed}


def network_input_params(protocol: Protocol, frames: int, ws: WeightSet, precision: str = "fp32") -> dict:
    """What decides the network's input and output for a clip of ``frames`` frames already chosen (cache keys):
    the reference's settings as they always were; for another protocol its resize and range alone, so that two
    protocols feeding the network the same bytes share cache entries (the clip's frame indices join the key
    where a protocol draws them)."""
    settings = fvd_settings(frames, ws, precision)
    if protocol.is_reference:
        return settings
    return {key: settings[key] for key in ("format", "frames", "embedding", "weights", "weights_index_sha256",
                                           "precision")} | {"resize": protocol.resize, "range": protocol.value_range}
