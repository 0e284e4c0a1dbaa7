"""Edge cases of the inputs: odd file names, special files, unreadable files, extreme frames, forged .npy headers."""

from __future__ import annotations

import builtins
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import zipfile

import cv2
import numpy as np
import pytest
from support import ARM_WRESTLING, ROOT, needs_video, run_cli, write_video

from i3d.errors import InputError, OptionError
from i3d.inputs import arrays
from i3d.inputs.arrays import load_clip
from i3d.inputs.frame_folders import iter_frames_dir, read_frames_dir, read_image
from i3d.inputs.video import read_video
from i3d.transforms import MAX_ASPECT, center_crop, prepare_frame, resize_short_side
from i3d.preprocess.windows import VideoOptions, iter_source_frames
from i3d.streams import streams_named

RGB = streams_named("rgb")[0]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def run_python(code: str, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a crash there cannot take the test session down)."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def non_utf8(folder, name: bytes) -> str:
    """``folder/name`` as Python sees a name that is not valid UTF-8 (surrogate-escaped)."""
    return os.fsdecode(os.fsencode(folder) + b"/" + name)


def finishes(call, seconds: float = 20.0):
    """Run ``call()`` in a thread; returns (finished in time, the exception it raised or None)."""
    outcome: dict = {}

    def target():
        try:
            call()
        except BaseException as err:  # noqa: BLE001 - handed back to the test
            outcome["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), outcome.get("error")


def unblock_fifo(path) -> None:
    """Open a FIFO for writing and close it, releasing a reader stuck opening it (if the code under test hung)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


# ---- 1. names that are not valid UTF-8 ---------------------------------------

@needs_video
def test_video_with_a_non_utf8_name_reads_like_the_original(tmp_path):
    weird = non_utf8(tmp_path, b"a\xff.mp4")
    shutil.copyfile(ARM_WRESTLING, weird)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "frames.npz"
    code = ("import sys, numpy as np; from i3d.inputs.video import read_video; "
            "v = read_video(sys.argv[1], max_frames=10); "
            "np.savez(sys.argv[2], frames=v.frames, timestamps=v.timestamps)")
    # the name travels as an argument: Python's argv decodes it back to the same surrogate-escaped str
    proc = run_python(code, weird, str(out), env={"TMPDIR": str(scratch)})
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # was -11 (segfault in OpenCV)
    expected = read_video(ARM_WRESTLING, max_frames=10)
    with np.load(out) as got:
        assert got["frames"].shape == (10, 256, 340, 3)
        np.testing.assert_array_equal(got["frames"], expected.frames)
        np.testing.assert_array_equal(got["timestamps"], expected.timestamps)
    assert list(scratch.iterdir()) == []  # the ASCII link and its folder are gone


def test_frames_folder_with_non_utf8_names_reads_like_the_original(tmp_path):
    normal = tmp_path / "normal"
    normal.mkdir()
    weird = non_utf8(tmp_path, b"frames\xfe")
    os.mkdir(weird)
    rng = np.random.default_rng(3)
    for i in range(1, 11):
        image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
        ok, data = cv2.imencode(".png", image)
        assert ok
        (normal / f"{i}.png").write_bytes(data.tobytes())
        with open(non_utf8(weird, b"%d\xe9.png" % i), "wb") as handle:  # Latin-1 e-acute: not UTF-8
            handle.write(data.tobytes())
    out = tmp_path / "frames.npy"
    code = ("import sys, numpy as np; from i3d.inputs.frame_folders import read_frames_dir; "
            "np.save(sys.argv[2], read_frames_dir(sys.argv[1]).frames)")
    proc = run_python(code, weird, str(out))
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])  # was -11 (segfault in cv2.imread)
    expected = read_frames_dir(normal).frames
    assert expected.shape == (10, 256, 341, 3)
    np.testing.assert_array_equal(np.load(out), expected)


def _exif_rotated_jpeg(image: np.ndarray) -> bytes:
    """A JPEG of ``image`` with an EXIF orientation tag of 6 (display rotated 90 degrees clockwise)."""
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0)
    app1 = b"Exif\x00\x00" + tiff + struct.pack(">I", 0)
    data = data.tobytes()
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def test_images_decode_from_memory_exactly_as_imread(tmp_path):
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    files = {"exif.jpg": _exif_rotated_jpeg(image)}
    for name, array in [("a.png", image), ("b.jpg", image), ("c.bmp", image), ("d.webp", image),
                        ("gray.pgm", image[..., 0]), ("deep.png", image.astype(np.uint16) * 257),
                        ("alpha.png", np.dstack([image, image[..., :1]]))]:
        ok, data = cv2.imencode(os.path.splitext(name)[1], array)
        assert ok
        files[name] = data.tobytes()
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        expected = cv2.imread(str(path), cv2.IMREAD_COLOR)
        got = read_image(str(path))
        assert got.dtype == np.uint8 and got.shape == expected.shape, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
    assert read_image(str(tmp_path / "exif.jpg")).shape == (60, 40, 3)  # EXIF rotation applied, as imread does


# ---- 2. memory is bounded for extreme aspect ratios -------------------------

@pytest.mark.parametrize("height, width", [(240, 320), (360, 640), (256, 1024), (1024, 256), (320, 240),
                                           (256, 300), (100, 400), (57, 228)])
def test_prepare_frame_is_resize_short_side_for_ordinary_frames(height, width):
    frame = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = resize_short_side(frame)
    for crop in ("center", "full"):
        got = prepare_frame(frame, crop=crop)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


def test_prepare_frame_bounds_extreme_frames():
    assert MAX_ASPECT == 4
    rng = np.random.default_rng(5)
    wide = rng.integers(0, 256, (4, 2000, 3), dtype=np.uint8)
    tall = rng.integers(0, 256, (2000, 4, 3), dtype=np.uint8)
    for crop in ("center", "full"):
        assert prepare_frame(wide, crop=crop).shape == (256, 1024, 3)
        assert prepare_frame(tall, crop=crop).shape == (1024, 256, 3)
        assert prepare_frame(rng.integers(0, 256, (2, 50000, 3), dtype=np.uint8), crop=crop).shape == (256, 1024, 3)
    # When the trim is an even number of pixels, the centre crop sees exactly what it saw without the trim.
    for frame in (rng.integers(0, 256, (8, 1000, 3), dtype=np.uint8), wide):
        np.testing.assert_array_equal(center_crop(prepare_frame(frame)), center_crop(resize_short_side(frame)))
    # Short side already 256: a trimmed copy, never a view that keeps the whole source frame alive.
    big = rng.integers(0, 256, (256, 3000, 3), dtype=np.uint8)
    trimmed = prepare_frame(big)
    assert trimmed.shape == (256, 1024, 3) and not np.shares_memory(trimmed, big)
    np.testing.assert_array_equal(trimmed, big[:, 988:2012])
    with pytest.raises(OptionError):
        prepare_frame(wide, crop="corner")


def test_prepare_frame_centre_trims_the_source_and_full_keeps_it_all():
    frame = np.zeros((10, 400, 3), np.uint8)
    frame[:, :180, 0] = 255  # red left part
    frame[:, 180:220, 1] = 255  # green middle band, 40 px = MAX_ASPECT x 10
    frame[:, 220:, 2] = 255  # blue right part
    centre = prepare_frame(frame, crop="center")
    assert centre.shape == (256, 1024, 3)
    assert np.all(centre[..., 1] == 255) and centre[..., 0].max() == 0 and centre[..., 2].max() == 0
    full = prepare_frame(frame, crop="full")
    assert full.shape == (256, 1024, 3)
    assert full[:, :400, 0].min() == 255 and full[:, -400:, 2].min() == 255  # the whole width survives


def test_stream_frames_prepare_extreme_videos_by_crop(tmp_path):
    video = write_video(tmp_path / "wide.avi", 12, width=2000, height=4)
    for crop in ("center", "full"):
        frames = [f for f, _, _ in iter_source_frames(video, VideoOptions(crop=crop))]
        assert len(frames) == 12 and {f.shape for f in frames} == {(256, 1024, 3)}, crop


_RSS_CHILD = """
import resource, sys
import numpy as np
from i3d import transforms
from i3d.preprocess.windows import VideoOptions, iter_windows
from i3d.streams import streams_named


def peak_kb():
    # VmHWM: this process's own peak. ru_maxrss alone would do from a shell, but a child started by a
    # big process (pytest) inherits that process's peak across exec, which could hide the growth measured here.
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


transforms.resize_short_side(np.zeros((8, 8, 3), np.uint8))  # OpenCV loaded before the baseline
base = peak_kb()
shapes = [w.clips["rgb"].shape for w in iter_windows(sys.argv[1], streams_named("rgb"), VideoOptions())]
print(base, peak_kb(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, shapes)
"""


def test_extreme_aspect_video_streams_in_bounded_memory(tmp_path):
    # MJPG writes (and OpenCV reads back) a 2000x4 frame as is.
    video = write_video(tmp_path / "wide.avi", 30, width=2000, height=4)
    proc = run_python(_RSS_CHILD, str(video))
    assert proc.returncode == 0, proc.stderr[-2000:]
    base_kb, peak_kb, _, shapes = proc.stdout.split(maxsplit=3)
    assert shapes.strip() == "[(1, 30, 224, 224, 3)]"
    growth_mb = (int(peak_kb) - int(base_kb)) / 1024  # kB on Linux
    # Measured from a shell: ru_maxrss 108 MB in all, ~60 MB of growth (as for an ordinary 640x360 video);
    # 270 MB, ~220 MB of growth, before prepare_frame, when each 2000x4 frame became 128000x256 (98 MB, plus
    # resize buffers). The window itself needs ~50 MB (30 crops, the float32 clip and its checks), so 150 MB
    # leaves room and still catches the regression.
    assert growth_mb < 150, f"peak RSS grew by {growth_mb:.0f} MB"


# ---- 3. special files, directories, permissions, frame names ----------------

def test_devices_and_directories_are_named_not_called_empty(tmp_path):
    for reader in (read_video, lambda p: load_clip(p, RGB)):
        with pytest.raises(InputError, match="not a regular file \\(a character device\\)") as e:
            reader(os.devnull)
        assert "empty" not in str(e.value) and str(e.value).startswith(os.devnull)
        with pytest.raises(InputError, match="is a directory") as e:
            reader(tmp_path)
        assert str(tmp_path) in str(e.value) and "no such" not in str(e.value)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="file is empty"):
        read_video(empty)
    video = write_video(tmp_path / "v.avi", 10)
    with pytest.raises(InputError, match="not a directory \\(a file\\)") as e:
        read_frames_dir(video)
    assert "no such" not in str(e.value)
    with pytest.raises(InputError, match="no such directory"):
        iter_frames_dir(tmp_path / "missing")  # refused at once, before any frame is asked for


def test_a_socket_is_refused(tmp_path):
    path = tmp_path / "s.mp4"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        with pytest.raises(InputError, match="not a regular file \\(a socket\\)"):
            read_video(path)
    finally:
        sock.close()


def test_fifos_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 10):
        assert cv2.imwrite(str(folder / f"{i}.png"), np.full((20, 30, 3), 40 * i % 256, np.uint8))
    os.mkfifo(folder / "10.png")
    cases = [(fifo, lambda: read_video(fifo), "not a regular file (a FIFO)"),
             (fifo, lambda: load_clip(fifo, RGB), "not a regular file (a FIFO)"),
             (fifo, lambda: read_frames_dir(fifo), "not a directory (a FIFO)"),
             (folder / "10.png", lambda: read_frames_dir(folder), "not a regular file (a FIFO)")]
    for path, call, message in cases:
        done, error = finishes(call)
        if not done:
            unblock_fifo(path)
        assert done, f"blocked on {path}"
        assert isinstance(error, InputError) and message in str(error), error
        assert str(error).startswith(str(path)) and "empty" not in str(error)


def test_a_fifo_given_to_the_cli_exits_3_at_once(tmp_path):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    proc = run_cli("--video", str(fifo), weights_dir=tmp_path / "weights", timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.strip() == f"error: {fifo}: not a regular file (a FIFO); give a video file"
    proc = run_cli("--rgb", os.devnull, weights_dir=tmp_path / "weights", timeout=120)
    assert proc.returncode == 3 and "not a regular file (a character device)" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _deny(monkeypatch, module, name: str, denied) -> None:
    """Make ``module.name(path, ...)`` raise PermissionError for ``denied`` (as for a chmod 000 file, non-root)."""
    original = getattr(module, name)
    denied = os.fspath(denied)

    def guarded(path, *args, **kwargs):
        if os.fspath(path) == denied:
            raise PermissionError(13, "Permission denied", denied)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(module, name, guarded)


def test_unreadable_video_is_permission_denied(tmp_path, monkeypatch):
    video = write_video(tmp_path / "v.avi", 12)
    _deny(monkeypatch, os, "open", video)
    with pytest.raises(InputError, match="permission denied") as e:
        read_video(video)
    assert str(e.value).startswith(f"{video}: permission denied") and "not a video" not in str(e.value)


def test_unreachable_video_is_permission_denied(tmp_path, monkeypatch):
    video = write_video(tmp_path / "v.avi", 12)
    _deny(monkeypatch, os, "stat", video)  # a folder on the way without search permission
    with pytest.raises(InputError, match=f"^{video}: permission denied"):
        read_video(video)


def test_unreadable_frames_folder_and_image_are_permission_denied(tmp_path, monkeypatch):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 11):
        assert cv2.imwrite(str(folder / f"frame_{i:04d}.png"), np.full((20, 30, 3), 9 * i, np.uint8))
    with monkeypatch.context() as patch:
        _deny(patch, os, "listdir", folder)
        with pytest.raises(InputError, match=f"^{folder}: permission denied"):
            read_frames_dir(folder)
    image = folder / "frame_0003.png"
    _deny(monkeypatch, builtins, "open", image)
    with pytest.raises(InputError, match=f"^{image}: permission denied"):
        read_frames_dir(folder)


def test_unreadable_npy_is_permission_denied(tmp_path, monkeypatch):
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((1, 9, 224, 224, 3), np.float32))
    _deny(monkeypatch, builtins, "open", clip)
    with pytest.raises(InputError, match=f"^{clip}: permission denied"):
        load_clip(clip, RGB)


_DENIED_CHECK = """
import sys
from i3d.errors import InputError
from i3d.inputs.arrays import load_clip
from i3d.inputs.video import read_video
from i3d.streams import RGB
for path, call in [(sys.argv[1], lambda: read_video(sys.argv[1])), (sys.argv[2], lambda: load_clip(sys.argv[2], RGB))]:
    try:
        call()
    except InputError as err:
        print(err)
"""


def _without_file_permission_override() -> None:
    """In a child before exec: drop CAP_DAC_OVERRIDE (1) and CAP_DAC_READ_SEARCH (2) from the bounding set, so
    the root process exec starts obeys file modes as its owner does (PR_CAPBSET_DROP is prctl option 24)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_chmod_000_files_are_permission_denied(tmp_path):
    """In this process for any user but root; as root (CI), in a child without root's override of file modes."""
    folder = tmp_path
    video = write_video(folder / "v.avi", 12)
    clip = folder / "clip.npy"
    np.save(clip, np.zeros((1, 9, 224, 224, 3), np.float32))
    try:
        for path in (video, clip):
            path.chmod(0)
        if IS_ROOT:
            proc = subprocess.run([sys.executable, "-c", _DENIED_CHECK, str(video), str(clip)],
                                  preexec_fn=_without_file_permission_override, capture_output=True, text=True,
                                  timeout=120, cwd=folder)
            assert proc.returncode == 0, proc.stderr[-2000:]
            assert [line.split(": permission denied")[0] for line in proc.stdout.splitlines()] == [str(video), str(clip)]
        else:
            for path, call in [(video, lambda: read_video(video)), (clip, lambda: load_clip(clip, RGB))]:
                with pytest.raises(InputError, match=f"^{path}: permission denied"):
                    call()
    finally:
        for path in (video, clip):
            path.chmod(0o644)


def test_frames_folder_messages_name_the_image_file(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 11):
        assert cv2.imwrite(str(folder / f"frame_{i:04d}.png"), np.full((40, 60, 3), 20 * i, np.uint8))
    bad = folder / "frame_0004.png"
    bad.write_text("not a png")
    with pytest.raises(InputError) as e:
        read_frames_dir(folder)
    assert str(e.value).startswith(f"{bad}: cannot read image") and "frame 3" not in str(e.value)
    bad.write_bytes(b"")
    with pytest.raises(InputError, match=f"^{bad}: cannot read image \\(file is empty\\)"):
        read_frames_dir(folder)
    assert cv2.imwrite(str(bad), np.full((40, 1, 3), 9, np.uint8))
    with pytest.raises(InputError, match=f"^{bad}: image is 1x40 px; frames must be at least 2x2"):
        read_frames_dir(folder)
    assert cv2.imwrite(str(bad), np.full((40, 90, 3), 9, np.uint8))
    with pytest.raises(InputError, match=f"^{bad} is 90x40 px, a different shape from the first frame"):
        read_frames_dir(folder)
    bad.unlink()
    bad.mkdir()
    with pytest.raises(InputError, match=f"^{bad}: is a directory, not an image"):
        read_frames_dir(folder)


def test_video_frame_numbers_count_from_1(tmp_path):
    whole = write_video(tmp_path / "whole.avi", 60).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) // 2])
    capture = cv2.VideoCapture(str(cut))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert 0 < decoded < 55
    with pytest.raises(InputError) as e:
        read_video(cut, strict=True)
    message = str(e.value)
    assert message.startswith(f"{cut}: truncated or unreadable frame at {decoded + 1} (counting from 1, about ")
    assert f"only {decoded} of the 60 frames" in message and "\n" not in message


# ---- 4. .npy headers are checked before any allocation ------------------------

def _forged_npy(path, shape, descr: str = "<f4", tail: bytes = b"\0" * 64):
    """A valid .npy header claiming ``shape`` followed by only ``tail``."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": descr, "fortran_order": False, "shape": shape})
        handle.write(tail)
    return path


def test_forged_huge_npy_header_is_refused_before_loading(tmp_path):
    shape = (1, 10**9, 224, 224, 3)
    path = _forged_npy(tmp_path / "huge.npy", shape)
    with pytest.raises(InputError) as e:
        load_clip(path, RGB)
    assert str(e.value) == (f"{path}: header says shape {shape} float32 (602 TB) but the file holds 64 bytes of "
                            "data: truncated or not a numpy.save file; save the clip again")
    with pytest.raises(InputError, match="dtype uint8; expected"):
        load_clip(_forged_npy(tmp_path / "u8.npy", shape, "|u1"), RGB)
    with pytest.raises(InputError, match="holds pickled objects"):
        load_clip(_forged_npy(tmp_path / "obj.npy", shape, "|O"), RGB)
    proc = run_cli("--rgb", str(path), weights_dir=tmp_path / "weights", timeout=120)
    assert proc.returncode == 3, proc.stderr  # was 1: MemoryError, "unexpected"
    assert "truncated or not a numpy.save file" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_truncated_or_padded_npy_is_refused(tmp_path):
    clip = np.random.default_rng(6).uniform(-1, 1, (1, 9, 224, 224, 3)).astype(np.float32)
    path = tmp_path / "clip.npy"
    np.save(path, clip)
    data = path.read_bytes()
    for name, body, held in [("cut.npy", data[:-100], clip.nbytes - 100), ("long.npy", data + b"\0" * 8,
                                                                             clip.nbytes + 8)]:
        (tmp_path / name).write_bytes(body)
        with pytest.raises(InputError, match=f"the file holds {held} bytes of data: truncated"):
            load_clip(tmp_path / name, RGB)
    np.testing.assert_array_equal(load_clip(path, RGB), clip)


def test_clip_larger_than_memory_is_refused(tmp_path, monkeypatch):
    memory = arrays.physical_memory()
    assert memory is not None and memory > 100 * 2**20
    path = tmp_path / "clip.npy"
    np.save(path, np.zeros((1, 9, 224, 224, 3), np.float32))  # 5.4 MB
    monkeypatch.setattr(arrays, "physical_memory", lambda: 2_000_000)
    with pytest.raises(InputError) as e:
        load_clip(path, RGB)
    assert str(e.value) == (f"{path}: the clip is 5.42 MB (shape (1, 9, 224, 224, 3) float32), more than this "
                            "machine's 2 MB of memory; use a shorter clip (fewer frames)")


def test_valid_npy_variants_still_load(tmp_path):
    clip = np.random.default_rng(7).uniform(-1, 1, (9, 224, 224, 3)).astype(np.float32)
    fortran = tmp_path / "fortran.npy"
    np.save(fortran, np.asfortranarray(clip))
    np.testing.assert_array_equal(load_clip(fortran, RGB)[0], clip)  # accepted, as before
    for version in ((2, 0), (3, 0)):
        path = tmp_path / f"v{version[0]}.npy"
        with open(path, "wb") as handle:
            np.lib.format.write_array(handle, clip, version=version)
        np.testing.assert_array_equal(load_clip(path, RGB)[0], clip)
    float64 = tmp_path / "f8.npy"
    np.save(float64, clip.astype(np.float64))
    assert load_clip(float64, RGB).dtype == np.float32
    npz = tmp_path / "z.npy"
    with zipfile.ZipFile(npz, "w") as archive:
        archive.writestr("clip.npy", b"x")
    with pytest.raises(InputError, match="is an .npz archive"):
        load_clip(npz, RGB)
    with pytest.raises(InputError, match="no such file"):
        load_clip(tmp_path / "missing.npy", RGB)
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="file is empty"):
        load_clip(empty, RGB)
