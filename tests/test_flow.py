"""Tests for i3d.preprocess.flow: TV-L1/DIS flow values, clipping, workers, crops, the disk cache,
and streamed flow computed once per frame pair and shared by every window."""

from __future__ import annotations

import os

import numpy as np
import pytest
from support import SAMPLES, counting_pairs, write_video

import i3d.preprocess.flow as flow_mod
from i3d.errors import InputError, OptionError
from i3d.preprocess.flow import compute_flow, flow_cache_key, frames_sha256, iter_flow_pairs
from i3d.transforms import flow_clip

SAMPLE = str(SAMPLES / "arm_wrestling.mp4")


def moving_square(dx: int, dy: int, n: int = 6, size: int = 128, side: int = 40) -> np.ndarray:
    """RGB frames: a bright textured square moving (dx, dy) px per frame over a dark static texture."""
    rng = np.random.default_rng(0)
    blocks = np.ones((4, 4), np.uint8)  # 4x4 blocks: trackable texture, not pixel noise
    texture = np.kron(rng.integers(150, 256, (side // 4, side // 4), dtype=np.uint8), blocks)
    background = np.kron(rng.integers(0, 80, (size // 4, size // 4), dtype=np.uint8), blocks)
    frames = np.repeat(np.repeat(background[None, ..., None], n, 0), 3, 3)
    for t in range(n):
        y, x = 30 + t * dy, 20 + t * dx
        frames[t, y:y + side, x:x + side] = texture[..., None]
    return frames


def square_mean(flow: np.ndarray, dx: int, dy: int, side: int = 40, margin: int = 8) -> np.ndarray:
    """Mean (x, y) flow over the interior of the square in each source frame."""
    vals = [flow[t, 30 + t * dy + margin:30 + t * dy + side - margin,
                 20 + t * dx + margin:20 + t * dx + side - margin].reshape(-1, 2)
            for t in range(len(flow))]
    return np.concatenate(vals).mean(axis=0)


@pytest.fixture(scope="module")
def right_frames() -> np.ndarray:
    return moving_square(4, 0)


@pytest.fixture(scope="module")
def right_flow(right_frames) -> np.ndarray:
    return compute_flow(right_frames, workers=1)


def test_tvl1_recovers_known_motion(right_frames, right_flow):
    assert right_flow.shape == (5, 128, 128, 2) and right_flow.dtype == np.float32
    mx, my = square_mean(right_flow, 4, 0)
    assert mx == pytest.approx(4 / 20, rel=0.1) and abs(my) < 0.02
    assert np.abs(right_flow[:, :12, :12]).max() < 0.05  # static background corner
    down = compute_flow(moving_square(0, 3), workers=1)
    mx, my = square_mean(down, 0, 3)
    assert my == pytest.approx(3 / 20, rel=0.1) and abs(mx) < 0.02
    assert np.abs(right_flow).max() <= 1.0 and np.abs(down).max() <= 1.0


def test_workers_give_identical_results(right_frames, right_flow):
    np.testing.assert_array_equal(compute_flow(right_frames, workers=2), right_flow)


def test_dis_same_sign(right_frames):
    dis = compute_flow(right_frames, algorithm="dis", workers=1)
    assert dis.shape == (5, 128, 128, 2)
    mx, my = square_mean(dis, 4, 0)
    assert mx > 0.1 and abs(my) < 0.05
    mx, my = square_mean(compute_flow(moving_square(0, 3), algorithm="dis", workers=1), 0, 3)
    assert my > 0.08 and abs(mx) < 0.05


class FakeFlow:
    """Stands in for an OpenCV solver: constant (x, y) displacement in pixels."""

    def __init__(self, x: float, y: float) -> None:
        self.xy = (x, y)

    def calc(self, a, b, _):
        out = np.empty((*a.shape, 2), np.float32)
        out[..., 0], out[..., 1] = self.xy
        return out


@pytest.mark.parametrize("x, y, ex, ey", [(35.0, -50.0, 1.0, -1.0), (10.0, -4.0, 0.5, -0.2),
                                          (-20.0, 20.0, -1.0, 1.0)])
def test_clip_to_20_pixels_and_scale(monkeypatch, x, y, ex, ey):
    monkeypatch.setattr(flow_mod, "_make_flow", lambda algorithm: FakeFlow(x, y))
    out = compute_flow(np.zeros((3, 16, 16, 3), np.uint8), algorithm="tvl1-opencv", workers=1)
    assert out.shape == (2, 16, 16, 2)
    np.testing.assert_allclose(out[..., 0], ex, rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], ey, rtol=1e-6)


def test_flow_clip_crops():
    flow = np.zeros((4, 256, 340, 2), np.float32)
    flow[:, 128, 170] = (0.5, -0.5)
    flow[..., 0] += np.linspace(-0.2, 0.2, 340, dtype=np.float32)
    centre = flow_clip(flow)
    assert centre.shape == (4, 224, 224, 2) and centre.dtype == np.float32
    np.testing.assert_array_equal(centre, flow[:, 16:240, 58:282])
    const = np.full((2, 256, 340, 2), 0.5, np.float32)
    full = flow_clip(const, crop="full")  # displacements rescaled with the image
    assert full.shape == (2, 224, 224, 2)
    np.testing.assert_allclose(full[..., 0], 0.5 * 224 / 340, rtol=1e-5)
    np.testing.assert_allclose(full[..., 1], 0.5 * 224 / 256, rtol=1e-5)
    with pytest.raises(InputError):
        flow_clip(np.zeros((4, 256, 340, 3), np.float32))
    with pytest.raises(OptionError) as e:
        flow_clip(flow, crop="nope")
    assert e.value.option == "crop"


def test_bad_inputs():
    with pytest.raises(InputError, match="at least 2 frames"):
        compute_flow(np.zeros((1, 64, 64, 3), np.uint8))
    with pytest.raises(InputError, match="uint8"):
        compute_flow(np.zeros((3, 64, 64, 3), np.float32))
    with pytest.raises(InputError):
        compute_flow(np.zeros((3, 64, 64), np.uint8))
    with pytest.raises(OptionError) as e:
        compute_flow(np.zeros((3, 64, 64, 3), np.uint8), algorithm="farneback")
    assert e.value.option == "flow_algorithm"


def test_cache_key_and_hashes(tmp_path):
    params = {"algorithm": "tvl1", "fps": 25.0, "start": None, "end": None,
              "max_frames": None, "short_side": 256}
    key = flow_cache_key("ab" * 32, params)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == flow_cache_key("ab" * 32, dict(reversed(list(params.items()))))
    assert key != flow_cache_key("ab" * 32, {**params, "algorithm": "dis"})
    assert key != flow_cache_key("ab" * 32, {**params, "start": 1.0})
    assert key != flow_cache_key("cd" * 32, params)
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert frames_sha256(a) != frames_sha256(a.reshape(2, 4, 3, 4))
    assert frames_sha256(a) != frames_sha256(a + 1)


def counting(monkeypatch) -> list:
    """Replace the flow computation with a counting wrapper; returns the call log."""
    calls = []
    real = flow_mod._raw_flow

    def wrapped(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(flow_mod, "_raw_flow", wrapped)
    return calls


def test_cache_reuse_and_repair(monkeypatch, tmp_path, right_frames):
    frames = right_frames[:3, :64, :64]
    cache = tmp_path / "cache"
    calls = counting(monkeypatch)
    first = compute_flow(frames, workers=1, cache_dir=cache)
    files = os.listdir(cache)
    assert calls == [1] and len(files) == 1 and files[0].endswith(".npy")
    stored = np.load(cache / files[0])
    assert stored.dtype == np.float32 and stored.shape == (2, 64, 64, 2)
    np.testing.assert_array_equal(stored / np.float32(20), first)

    again = compute_flow(frames, workers=1, cache_dir=cache)
    assert calls == [1]  # served from the cache
    np.testing.assert_array_equal(again, first)

    compute_flow(frames, workers=1, cache_dir=cache, cache_key_extra="other")
    compute_flow(frames, algorithm="dis", workers=1, cache_dir=cache)
    assert calls == [1, 1, 1] and len(os.listdir(cache)) == 3

    path = cache / files[0]
    for corrupt in (b"garbage, not an npy file", None):
        if corrupt is None:  # a valid .npy of the wrong shape
            np.save(path, np.zeros((1, 64, 64, 2), np.float32))
        else:
            path.write_bytes(corrupt)
        with pytest.warns(UserWarning, match="corrupt"):
            repaired = compute_flow(frames, workers=1, cache_dir=cache)
        np.testing.assert_array_equal(repaired, first)
        np.testing.assert_array_equal(np.load(path), stored)
    assert len(calls) == 5
    assert len(os.listdir(cache)) == 3
    assert not [f for f in os.listdir(cache) if not f.endswith(".npy") or f.startswith(".")]


def test_cache_write_interrupted_leaves_nothing(monkeypatch, tmp_path):
    frames = moving_square(2, 0, n=3, size=48, side=16)

    def broken_save(f, arr, allow_pickle=False):
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(flow_mod.np, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        compute_flow(frames, workers=1, cache_dir=tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not os.path.exists(SAMPLE), reason="sample clip not available")
def test_real_clip_flow_alignment():
    from i3d.inputs.video import read_video
    frames = read_video(SAMPLE, max_frames=3, min_frames=3).frames
    flow = compute_flow(frames, algorithm="dis", workers=1)
    assert flow.shape == (2, *frames.shape[1:3], 2)  # T frames -> T-1 fields
    assert np.abs(flow).max() <= 1.0 and np.abs(flow).max() > 0
    assert flow_clip(flow).shape == (2, 224, 224, 2)


@pytest.mark.parametrize("chunk", [7, 32])
def test_stream_flow_solves_each_pair_once(monkeypatch, chunk):
    frames = moving_square(1, 0, n=40, size=96, side=16)
    expected = compute_flow(frames, algorithm="dis", workers=1)
    calls = counting_pairs(monkeypatch)
    out = list(iter_flow_pairs(range(len(frames)), lambda i: frames[i], algorithm="dis", workers=1, chunk=chunk))
    assert [item for item, _ in out] == list(range(40))
    assert out[-1][1] is None and all(field is not None for _, field in out[:-1])
    np.testing.assert_array_equal(np.stack([field for _, field in out[:-1]]), expected)
    assert sum(calls) == 39 and max(calls) <= chunk  # every pair once, `chunk` at a time


def test_stream_flow_short_streams():
    frames = moving_square(1, 0, n=2, size=48, side=16)
    assert list(iter_flow_pairs([], lambda i: frames[i], algorithm="dis")) == []
    assert [(i, f) for i, f in iter_flow_pairs([0], lambda i: frames[i], algorithm="dis")] == [(0, None)]
    two = list(iter_flow_pairs([0, 1], lambda i: frames[i], algorithm="dis", workers=1))
    assert [i for i, _ in two] == [0, 1] and two[1][1] is None
    np.testing.assert_array_equal(two[0][1], compute_flow(frames, algorithm="dis", workers=1)[0])


def test_windows_share_flow_pairs_and_cache(monkeypatch, tmp_path):
    from i3d.inputs.video import read_video
    from i3d.preprocess.windows import VideoOptions, iter_windows
    from i3d.streams import FLOW

    video = write_video(tmp_path / "square.avi", frames=60, width=64, height=48)
    cache = tmp_path / "flow-cache"
    calls = counting_pairs(monkeypatch)

    def windows(window: int, stride: int) -> dict[int, np.ndarray]:
        options = VideoOptions(window=window, stride=stride, flow_algorithm="dis", flow_cache=cache)
        out = {}
        for w in iter_windows(video, (FLOW,), options):
            clip = w.clips["flow"]
            assert w.frames == window and clip.shape == (1, window - 1, 224, 224, 2)
            assert clip.dtype == np.float32 and np.abs(clip).max() <= 1.0
            out[w.first_frame] = clip
        return out

    first = windows(20, 10)  # overlapping: 5 windows of 19 fields each would be 95 pairs
    assert sorted(first) == [0, 10, 20, 30, 40]
    assert sum(calls) == 59  # each of the 60 frames' pairs solved once
    assert len(os.listdir(cache)) == 2  # chunks of 32 + 27 pairs

    calls.clear()
    second = windows(30, 15)  # other windows, same cache: nothing new to solve
    assert sorted(second) == [0, 15, 30]
    assert calls == []
    np.testing.assert_array_equal(first[0], second[0][:, :19])
    np.testing.assert_array_equal(first[30], second[30][:, :19])
    np.testing.assert_array_equal(first[20][:, 10:], second[30][:, :9])

    # and the shared fields are the flow of the whole video, cut into windows
    frames = read_video(video).frames
    full = compute_flow(frames, algorithm="dis", workers=1)
    assert len(frames) == 60
    np.testing.assert_array_equal(first[10][0], flow_clip(full[10:29]))
    np.testing.assert_array_equal(second[15][0], flow_clip(full[15:44]))
