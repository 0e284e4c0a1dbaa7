"""Prepare DeepMind's cricket sample clip (v_CricketShot_g04_c01) in data/.

Either download DeepMind's published .npy arrays or rebuild them from the GIF
previews DeepMind shows beside them: the RGB preview stores (x + 1) / 2 and
the flow preview x + 0.5 with a zero third channel, so RGB = gif / 255 * 2 - 1
and flow = gif[..., :2] / 255 - 0.5. The previews clip values outside their
range, so the rebuilt flow is close to, not equal to, the original.

    python -m i3d samples                   # download
    python -m i3d samples --from DIR        # build from DIR/v_CricketShot_g04_c01_{rgb,flow}.gif
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from i3d.errors import I3DError, InputError
from i3d.files import atomic_path
from i3d.streams import STREAMS
from i3d.inputs.arrays import validate_clip

SAMPLE = "v_CricketShot_g04_c01"
SAMPLE_URL = "https://github.com/google-deepmind/kinetics-i3d/raw/master/data/{name}_{stream}.npy"
DATA_DIR = Path(__file__).resolve().parents[2] / "data"
SAMPLE_FRAMES = 79


def sample_path(stream: str, data_dir: Path = DATA_DIR) -> Path:
    """Where the sample .npy for 'rgb' or 'flow' lives."""
    return data_dir / f"{SAMPLE}_{stream}.npy"


def _read_gif(path: Path) -> np.ndarray:
    from i3d.quiet import quiet_opencv

    quiet_opencv()
    import cv2

    if not path.is_file():
        raise InputError(f"{path}: no such file (need DeepMind's GIF preview of the sample)")
    ok, frames = cv2.imreadmulti(str(path), flags=cv2.IMREAD_COLOR)
    if not ok or not frames:
        raise InputError(f"{path}: cannot be decoded as a GIF")
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) for frame in frames])


def clips_from_gifs(folder: Path) -> dict[str, np.ndarray]:
    """Rebuild the sample's (1, 79, 224, 224, C) float32 arrays from the GIF previews in ``folder``."""
    rgb = _read_gif(folder / f"{SAMPLE}_rgb.gif").astype(np.float32) / 255.0 * 2.0 - 1.0
    flow = _read_gif(folder / f"{SAMPLE}_flow.gif")[..., :2].astype(np.float32) / 255.0 - 0.5
    return {"rgb": rgb[np.newaxis], "flow": flow[np.newaxis]}


def download_clips(timeout: float = 30.0) -> dict[str, np.ndarray]:
    """Fetch DeepMind's published sample arrays."""
    clips = {}
    for stream in ("rgb", "flow"):
        url = SAMPLE_URL.format(name=SAMPLE, stream=stream)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError) as err:
            raise I3DError(f"download of {url} failed ({err}); build the sample from DeepMind's GIF "
                           "previews instead") from None
        clips[stream] = np.load(io.BytesIO(payload), allow_pickle=False)
    return clips


def write_clips(clips: dict[str, np.ndarray], data_dir: Path = DATA_DIR) -> list[Path]:
    """Check shape and range, then write each clip atomically; returns the paths."""
    checked = {}
    for stream, clip in clips.items():
        clip = validate_clip(clip, STREAMS[stream], f"sample {stream} clip")
        if clip.shape[1] != SAMPLE_FRAMES:
            raise InputError(f"sample {stream} clip has {clip.shape[1]} frames, expected {SAMPLE_FRAMES}")
        checked[stream] = clip
    paths = []
    for stream, clip in checked.items():
        path = sample_path(stream, data_dir)
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, clip)
        paths.append(path)
    return paths
