"""Tests for i3d.inputs.video (decoding, 25 fps resampling, resizing), i3d.transforms (crops)
and i3d.preprocess.windows (sliding windows)."""

from __future__ import annotations

import math
import os

import cv2
import numpy as np
import pytest
from support import SAMPLES, write_video

from i3d.errors import InputError, OptionError
from i3d.inputs.frame_folders import read_frames_dir
from i3d.inputs.video import read_video
from i3d.inputs.clock import DecodedVideo, TimestampClock
from i3d.transforms import center_crop, rgb_clip
from i3d.preprocess.windows import sliding_windows

SAMPLE = str(SAMPLES / "arm_wrestling.mp4")
BITS = 8  # frame index encoded as 8 black/white vertical bands (robust to JPEG + resizing)


def index_frame(i: int, w: int = 320, h: int = 240) -> np.ndarray:
    """BGR frame whose vertical bands spell ``i`` in binary (band 0 = least significant bit)."""
    img = np.zeros((h, w, 3), np.uint8)
    for b in range(BITS):
        if i >> b & 1:
            img[:, b * w // BITS:(b + 1) * w // BITS] = 255
    return img


def decode_index(frame: np.ndarray) -> int:
    """Inverse of index_frame on a (possibly resized, RGB) frame: sample each band's centre."""
    h, w = frame.shape[:2]
    value = 0
    for b in range(BITS):
        x = int((b + 0.5) * w / BITS)
        if frame[h // 4:3 * h // 4, x - 2:x + 3].mean() > 127:
            value |= 1 << b
    return value


def write_avi(path, frames, fps: float) -> str:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return str(path)


def indexed_video(tmp_path, fps: float, n: int, w: int = 320, h: int = 240) -> str:
    return write_avi(tmp_path / f"idx_{fps:g}_{w}x{h}.avi", [index_frame(i, w, h) for i in range(n)], fps)


@pytest.mark.parametrize("src_fps, n", [(50, 100), (30, 60), (24, 48), (25, 40)])
def test_resampling_picks_latest_frame_by_timestamp(tmp_path, src_fps, n):
    video = read_video(indexed_video(tmp_path, src_fps, n))
    duration = n / src_fps
    k = np.arange(math.ceil(duration * 25 - 1e-6))
    expected = np.floor(k * src_fps / 25 + 1e-6).astype(int)  # latest source frame at k/25 s
    assert video.frames.shape[0] == len(k) == round(duration * 25)
    np.testing.assert_array_equal(video.source_indices, expected)
    np.testing.assert_array_equal([decode_index(f) for f in video.frames], expected)
    np.testing.assert_allclose(video.timestamps, k / 25)
    assert video.fps == 25.0 and video.source_fps == pytest.approx(src_fps)
    if src_fps == 50:
        np.testing.assert_array_equal(expected, np.arange(0, n, 2))
    if src_fps == 30:  # one frame in six dropped: 5, 11, 17, ...
        assert sorted(set(range(n)) - set(expected)) == list(range(5, n, 6))
    if src_fps == 24:  # one frame repeated in every 25 output frames: 0, 24
        values, counts = np.unique(expected, return_counts=True)
        assert list(values[counts > 1]) == [0, 24] and counts.max() == 2


def test_landscape_and_portrait_resize_and_center_crop(tmp_path):
    for w, h, out_hw in [(320, 240, (256, 341)), (240, 320, (341, 256)), (300, 224, (256, 343))]:
        frames = []
        for i in range(10):
            img = np.full((h, w, 3), 40, np.uint8)
            img[h // 2 - 10:h // 2 + 10, w // 2 - 10:w // 2 + 10] = (0, 0, 255)  # red (BGR)
            img[:8, :8] = (255, 0, 0)  # blue corner, must not survive the centre crop
            frames.append(img)
        video = read_video(write_avi(tmp_path / f"m_{w}x{h}.avi", frames, 25))
        assert video.frames.dtype == np.uint8
        assert video.frames.shape == (10, *out_hw, 3)
        centre = video.frames[0, out_hw[0] // 2, out_hw[1] // 2]
        assert centre[0] > 200 and centre[1] < 60 and centre[2] < 60  # RGB order: red first
        clip = rgb_clip(video.frames)
        assert clip.shape == (10, 224, 224, 3) and clip.dtype == np.float32
        red = (clip[0, ..., 0] > 0.5) & (clip[0, ..., 2] < -0.5)
        ys, xs = np.nonzero(red)
        assert abs(ys.mean() - 111.5) < 1.5 and abs(xs.mean() - 111.5) < 1.5
        assert not ((clip[0, ..., 2] > 0.5) & (clip[0, ..., 0] < -0.5)).any()
        top, left = (out_hw[0] - 224) // 2, (out_hw[1] - 224) // 2
        expected = video.frames[:, top:top + 224, left:left + 224].astype(np.float32) / 255 * 2 - 1
        np.testing.assert_array_equal(clip, expected)


def test_rgb_clip_value_range_and_full_resize():
    frames = np.zeros((3, 256, 340, 3), np.uint8)
    frames[:, :, :, 0] = np.round(np.arange(340) * 255 / 339).astype(np.uint8)  # ramp 0..255 in x
    frames[:, :, :, 1] = 255
    full = rgb_clip(frames, crop="full")  # whole width squeezed into 224 columns
    assert full.shape == (3, 224, 224, 3) and full.dtype == np.float32
    assert full[0, 0, 0, 0] < -0.99 and full[0, 0, -1, 0] > 0.99
    assert np.all(full[..., 1] == 1.0) and np.all(full[..., 2] == -1.0)
    centre = rgb_clip(frames)  # columns 58..281 only
    assert centre[0, 0, 0, 0] == pytest.approx(frames[0, 0, 58, 0] / 255 * 2 - 1)
    assert centre[0, 0, -1, 0] == pytest.approx(frames[0, 0, 281, 0] / 255 * 2 - 1)
    np.testing.assert_array_equal(center_crop(frames, 200), frames[:, 28:228, 70:270])
    with pytest.raises(InputError):
        rgb_clip(frames.astype(np.float32))
    with pytest.raises(InputError):
        rgb_clip(np.zeros((2, 200, 300, 3), np.uint8))
    with pytest.raises(OptionError) as e:
        rgb_clip(frames, crop="corner")
    assert e.value.option == "crop"


def test_start_end_and_max_frames(tmp_path):
    path = indexed_video(tmp_path, 50, 100)
    full = read_video(path)
    part = read_video(path, start=0.4, end=1.0)
    np.testing.assert_array_equal(part.source_indices, np.arange(20, 50, 2))
    np.testing.assert_allclose(part.timestamps, np.arange(10, 25) / 25)
    np.testing.assert_array_equal(part.frames, full.frames[10:25])
    capped = read_video(path, max_frames=12)
    np.testing.assert_array_equal(capped.source_indices, np.arange(0, 24, 2))
    both = read_video(path, start=1.0, max_frames=10)
    np.testing.assert_array_equal([decode_index(f) for f in both.frames], np.arange(50, 70, 2))
    with pytest.raises(InputError, match="9"):
        read_video(path, start=1.8)  # only 5 grid times left
    with pytest.raises(OptionError) as e:
        read_video(path, start=1.0, end=0.5)
    assert e.value.option == "end"


def test_short_video_refused(tmp_path):
    path = indexed_video(tmp_path, 25, 5)
    with pytest.raises(InputError, match=r"5 frames at 25 fps; I3D needs at least 9") as e:
        read_video(path)
    assert path in str(e.value) and "\n" not in str(e.value)
    assert read_video(path, min_frames=5).frames.shape[0] == 5


def test_bad_files(tmp_path):
    missing = str(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    for path, what in [(missing, "no such file"), (str(empty), "empty"),
                       (str(text), "cannot open"), (str(tmp_path), "directory")]:
        with pytest.raises(InputError, match=what) as e:
            read_video(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_truncated_video(tmp_path):
    path = indexed_video(tmp_path, 25, 60)
    data = open(path, "rb").read()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[:len(data) // 2])
    with pytest.raises(InputError, match="truncated or unreadable frame at .*leave out --strict"):
        read_video(str(cut), strict=True)
    with pytest.warns(UserWarning, match=r"cut\.avi: only (\d+) of the 60 frames the container lists decode") as got:
        decoded = read_video(str(cut))  # a damaged tail: what decodes is used, with one warning
    assert len(got) == 1 and 9 <= decoded.frames.shape[0] < 55
    # Stopping early (max_frames) never reaches the damage, so it is fine.
    assert read_video(str(cut), max_frames=10).frames.shape[0] == 10


def test_timestamp_clock_fallbacks():
    clock = TimestampClock(25.0)  # AVI style: reports the next frame's position, last one 0
    assert [round(clock(ms), 6) for ms in (40, 80, 120, 0)] == [0, 0.04, 0.08, 0.12]
    clock = TimestampClock(30.0)  # no timestamps at all: index / source_fps
    np.testing.assert_allclose([clock(0.0) for _ in range(4)], np.arange(4) / 30)
    clock = TimestampClock(50.0)
    np.testing.assert_allclose([clock(ms) for ms in (0, math.nan, 100, 60, 140)],
                               [0, 0.02, 0.1, 0.12, 0.14])


def test_read_frames_dir_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 13):
        assert cv2.imwrite(str(folder / f"{i}.png"), index_frame(i, 160, 120))
    (folder / "notes.txt").write_text("ignored")
    video = read_frames_dir(folder, progress=False)
    assert isinstance(video, DecodedVideo) and video.fps == 25.0
    assert video.frames.shape == (12, 256, 341, 3)
    assert [decode_index(f) for f in video.frames] == list(range(1, 13))
    np.testing.assert_allclose(video.timestamps, np.arange(12) / 25)
    assert [decode_index(f) for f in read_frames_dir(folder, max_frames=9).frames] == list(range(1, 10))
    (folder / "13.png").write_text("not a png")
    with pytest.raises(InputError, match="13.png"):
        read_frames_dir(folder)
    with pytest.raises(InputError, match="no image files"):
        read_frames_dir(tmp_path)
    with pytest.raises(InputError, match="no such directory"):
        read_frames_dir(tmp_path / "missing")


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    read_video(indexed_video(tmp_path, 25, 12), progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "frame" in err


@pytest.mark.parametrize("n, window, stride, expected", [
    (10, 64, 32, [(0, 10)]),
    (64, 64, 32, [(0, 64)]),
    (128, 64, 32, [(0, 64), (32, 96), (64, 128)]),
    (100, 64, 32, [(0, 64), (32, 96), (36, 100)]),
    (65, 64, 64, [(0, 64), (1, 65)]),
    (250, 79, 79, [(0, 79), (79, 158), (158, 237), (171, 250)]),
])
def test_sliding_windows(n, window, stride, expected):
    windows = [(first, first + len(items)) for first, items in sliding_windows(range(n), window, stride)]
    assert windows == expected
    assert all(items == list(range(first, first + len(items)))
               for first, items in sliding_windows(range(n), window, stride))
    covered = set().union(*(range(a, b) for a, b in windows))
    assert covered == set(range(n)) and all(b - a == min(window, n) for a, b in windows)


@pytest.mark.parametrize("n, wanted, expected", [
    (100, False, [(0, 64), (32, 96)]),  # the tail window left out
    (100, True, [(0, 64), (32, 96), (36, 100)]),
    (10, False, []),  # too few for a window: none, rather than one of all
    (128, False, [(0, 64), (32, 96), (64, 128)]),  # no tail to leave out
])
def test_sliding_windows_asks_for_the_tail_once_the_items_end(n, wanted, expected):
    asked = []

    def tail() -> bool:
        asked.append(True)
        return wanted

    windows = [(first, first + len(items)) for first, items in sliding_windows(range(n), 64, 32, tail=tail)]
    assert windows == expected and len(asked) == (0 if n == 128 else 1)


def test_sliding_windows_rejects_nonsense():
    assert list(sliding_windows(range(0), 64, 32)) == []
    for args, option in [((10, 0, 1), "window"), ((10, 5, 0), "stride")]:
        with pytest.raises(OptionError) as e:
            list(sliding_windows(range(args[0]), *args[1:]))
        assert e.value.option == option


@pytest.mark.skipif(not os.path.exists(SAMPLE), reason="sample clip not available")
def test_real_sample_clip():
    video = read_video(SAMPLE)
    t, h, w, c = video.frames.shape
    print(f"arm_wrestling: T={t} source_fps={video.source_fps}")
    assert min(h, w) == 256 and c == 3 and video.fps == 25.0 and t >= 9
    assert video.source_fps == pytest.approx(28.0)
    assert t == 250  # 280 frames at 28 fps = 10 s
    assert rgb_clip(video.frames[:16]).shape == (16, 224, 224, 3)


def test_variable_frame_rate_follows_timestamps():
    """Irregular source times: each 25 fps grid time takes the latest frame shown at or before it."""
    from i3d.inputs.clock import pick_frames

    times = [0.0, 0.01, 0.02, 0.15, 0.16, 0.17, 0.30, 0.45]  # bursts and gaps, as a VFR phone video
    source = [(np.full((8, 8, 3), i, np.uint8), t) for i, t in enumerate(times)]
    picked = list(pick_frames(source, name="vfr", fps=25.0, frame_duration=0.04, start=None, end=None,
                               max_frames=None))
    grid = [k / 25 for k in range(len(picked))]
    expected = [max(i for i, t in enumerate(times) if t <= g + 1e-3) for g in grid]
    assert [index for _, _, index in picked] == expected
    assert expected[:6] == [0, 2, 2, 2, 4, 5] and len(picked) == 13  # the last frame lasts 0.04 s: to 0.49 s
    assert [seconds for _, seconds, _ in picked] == grid


def test_rgb_scaling_table_is_the_arithmetic_bit_for_bit():
    """The LUT gives exactly float32 ``x / 255 * 2 - 1`` for every uint8 value, into ``out`` too."""
    from i3d.transforms import rgb_to_unit_range

    values = np.arange(256, dtype=np.uint8)
    arithmetic = values.astype(np.float32) / np.float32(255) * np.float32(2) - np.float32(1)
    assert rgb_to_unit_range(values).view(np.uint32).tolist() == arithmetic.view(np.uint32).tolist()
    assert rgb_to_unit_range(values)[[0, 255]].tolist() == [-1.0, 1.0]
    frames = np.random.default_rng(3).integers(0, 256, (5, 224, 224, 3), dtype=np.uint8)
    expected = frames.astype(np.float32) / 255.0 * 2.0 - 1.0
    np.testing.assert_array_equal(rgb_to_unit_range(frames), expected)
    np.testing.assert_array_equal(rgb_to_unit_range(frames[:, ::2]), expected[:, ::2])  # not contiguous
    out = np.full(frames.shape, np.nan, np.float32)
    assert rgb_to_unit_range(frames, out=out) is out
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="out must be"):
        rgb_to_unit_range(frames, out=np.empty((4, 224, 224, 3), np.float32))


def test_cropped_windows_finish_into_reused_buffers_as_iter_windows_does(tmp_path):
    """Windows sent unfinished (uint8) and finished window after window into one reused block are
    exactly the windows iter_windows gives, a shorter tail window included."""
    from i3d.preprocess.windows import ClipBuffers, VideoOptions, iter_cropped_windows, iter_windows
    from i3d.streams import RGB

    video = write_video(tmp_path / "v.avi", 70, width=80, height=60)
    options = VideoOptions(window=32, stride=16)
    expected = list(iter_windows(video, (RGB,), options))
    buffers = ClipBuffers()
    cropped = list(iter_cropped_windows(video, (RGB,), options))
    assert [w.crops["rgb"].dtype for w in cropped] == [np.uint8] * len(expected)
    assert [w.crops["rgb"].shape[0] for w in cropped] == [32, 32, 32, 32]  # the last one aligned to the end
    blocks = set()
    for want, window in zip(expected, cropped, strict=True):
        got = window.finish((RGB,), buffers)
        blocks.add(got.clips["rgb"].__array_interface__["data"][0])
        assert (got.index, got.first_frame, got.frames, got.start, got.end) == \
               (want.index, want.first_frame, want.frames, want.start, want.end)
        np.testing.assert_array_equal(got.clips["rgb"], want.clips["rgb"])
    assert len(blocks) == 1  # every window written into the same memory
    short = cropped[0]
    short.crops = {"rgb": short.crops["rgb"][:20]}
    np.testing.assert_array_equal(short.finish((RGB,), buffers).clips["rgb"], expected[0].clips["rgb"][:, :20])
