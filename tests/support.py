"""Helpers the tests share: paths to ../shared, running commands, stand-in checkpoints, synthetic videos."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
INDEX_DIR = SHARED / "reference" / "deepmind_ckpt_index"
SAMPLES = SHARED / "samples"
ARM_WRESTLING = SAMPLES / "arm_wrestling.mp4"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared is not beside the checkout")
needs_video = pytest.mark.skipif(not ARM_WRESTLING.is_file(), reason="../shared/samples/arm_wrestling.mp4 missing")


def skip_outside_ci(reason: str) -> None:
    """Skip for ``reason`` (a prerequisite this machine lacks), but fail under CI (CI=true), which provides every
    prerequisite (.ci/run runs as root and installs the browser): there a skip would hide a test."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run this test")
    pytest.skip(reason)


def run_folder(tmp_path_factory) -> Path:
    """The temporary folder every test process of this run shares (xdist gives each process a folder in it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``build(folder)`` once per run, whichever test process asks first; the others wait for it (a file lock in
    the run's shared folder) and use the same folder, which no test may change."""
    from filelock import FileLock  # a dependency of Ray (the test extras); imported only when a fixture needs it

    run = run_folder(tmp_path_factory)
    folder, done = run / name, run / f"{name}.done"
    with FileLock(str(run / f"{name}.lock")):
        if not done.is_file():  # a process that failed to build it left no mark: build it again
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder


def index_path(deepmind_name: str) -> Path:
    return INDEX_DIR / f"{deepmind_name}.model.ckpt.index"


def run_cli(*args: str, weights_dir: Path, cwd: Path = ROOT, module: str | None = None,
            timeout: float = 300, env: dict | None = None, isolated: bool = False) -> subprocess.CompletedProcess:
    """Run evaluate.py (or ``python -m module``) with its own weights folder; returns the finished process.

    By default the command's ``main`` runs in this test process, as the script would call it, with the script's
    environment, working folder and text streams (so a run skips a fresh interpreter's 5 s TensorFlow import).
    ``isolated=True`` starts a real interpreter instead: for a test about the process itself (start-up, the
    script files, signals, file descriptors, a timeout) or about output that a child process writes.
    """
    env = {**os.environ, **(env or {}), "I3D_WEIGHTS_DIR": str(weights_dir)}
    command = [sys.executable, "-m", module] if module else [sys.executable, str(ROOT / "evaluate.py")]
    if isolated:
        return subprocess.run(command + list(args), cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    code, out, err = _main_in_process(module, list(args), cwd, env)
    return subprocess.CompletedProcess(command + list(args), code, out, err)


def _main_in_process(module: str | None, argv: list[str], cwd: Path, env: dict) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of the command's ``main(argv)`` run here; the process's environment,
    working folder, streams, signal handlers and sockets are as they were afterwards."""
    import io
    import signal
    import traceback
    from importlib import import_module

    if module not in (None, "i3d"):
        raise ValueError(f"no in-process entry point for python -m {module}; pass isolated=True")
    main = import_module("i3d.commands").main if module else import_module("i3d.commands.classify").main
    saved_env, saved_cwd, saved_streams = dict(os.environ), os.getcwd(), (sys.stdout, sys.stderr)
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_sockets = socket_functions()
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdout, sys.stderr = out, err
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's usage errors and --help
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if isinstance(stop.code, str):
            err.write(stop.code + "\n")
    except Exception:  # what the interpreter would do with an uncaught error: a traceback and status 1
        err.write(traceback.format_exc())
        code = 1
    finally:
        sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        for number, handler in saved_signals.items():
            signal.signal(number, handler)
        restore_sockets(saved_sockets)
    return code, out.getvalue(), err.getvalue()


def socket_functions() -> tuple:
    """The socket functions a command's ``--offline`` replaces in its process (see :func:`restore_sockets`)."""
    import socket

    return socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo


def restore_sockets(saved: tuple) -> None:
    """Put back the socket functions :func:`socket_functions` returned."""
    import socket

    socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo = saved


def random_clip(frames: int, channels: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (1, frames, 224, 224, channels)).astype(np.float32)


def random_deepmind_checkpoint(prefix, stream, seed: int = 0, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Write ``stream``'s checkpoint in DeepMind's naming with random values, as TF's Saver would; returns it."""
    import tensorflow as tf

    from i3d.model import build_i3d, checkpoint_key

    rng = np.random.default_rng(seed)
    tensors = {checkpoint_key(v.path, stream.scope): (rng.normal(size=v.shape) * scale).astype(np.float32)
               for v in build_i3d(channels=stream.channels).weights}
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tensors[n] for n in names])
    return tensors


def stand_in_kinetics600(folder: Path, seed: int = 0):
    """A stand-in for DeepMind's rgb_scratch_kin600 checkpoint: every name and shape of the real index (Momentum
    slots, 5-D statistics, no top scope), seeded random values, written by TensorFlow's writer into ``folder``.

    Returns (the tensors as written, the kinetics600 WeightSet pinning the stand-in's index). The real set pins
    DeepMind's index, so it refuses these files: random weights never run outside tests.
    """
    import tensorflow as tf

    from i3d.files import sha256_file
    from i3d.weights.checkpoint import read_index
    from i3d.weights.sets import get_weight_set

    rng = np.random.default_rng(seed)
    real = read_index(index_path("rgb_scratch_kin600"))
    tensors = {name: (rng.standard_normal(entry.shape, dtype=np.float32) * 0.05) for name, entry in real.items()}
    names = sorted(tensors)
    folder.mkdir(parents=True, exist_ok=True)
    tf.raw_ops.SaveV2(prefix=str(folder / "model.ckpt"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tensors[n] for n in names])
    ws = get_weight_set("rgb", "kinetics600")
    return tensors, dataclasses.replace(ws, index_sha256=sha256_file(folder / "model.ckpt.index"), data_git_blob=None)


def stand_in_flow_set(store_root: Path, seed: int = 0):
    """A flow_scratch stand-in: random weights in DeepMind's layout inside ``store_root``, and the
    WeightSet value that pins their index (inject it with ``weight_sets={"flow": ...}``)."""
    from i3d.files import sha256_file
    from i3d.weights.sets import get_weight_set

    ws = get_weight_set("flow", "kinetics")
    folder = store_root / ws.deepmind_name
    folder.mkdir(parents=True, exist_ok=True)
    random_deepmind_checkpoint(folder / "model.ckpt", ws.stream, seed=seed)
    return dataclasses.replace(ws, index_sha256=sha256_file(folder / "model.ckpt.index"))


def initialised_flow_set(store_root):
    """A flow_kinetics stand-in with Keras's seeded initial weights (not trained, but with activations of a
    sane size, unlike normal noise), in DeepMind's checkpoint layout; and the WeightSet that pins it."""
    import keras
    import tensorflow as tf

    from i3d.files import sha256_file
    from i3d.model import build_i3d, checkpoint_key
    from i3d.weights.sets import get_weight_set

    ws = get_weight_set("flow", "kinetics")
    keras.utils.set_random_seed(3)
    tensors = {checkpoint_key(v.path, ws.stream.scope): np.asarray(v.numpy(), np.float32)
               for v in build_i3d(channels=2).weights}
    folder = store_root / ws.deepmind_name
    folder.mkdir(parents=True)
    names = sorted(tensors)
    tf.raw_ops.SaveV2(prefix=str(folder / "model.ckpt"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tensors[n] for n in names])
    return dataclasses.replace(ws, index_sha256=sha256_file(folder / "model.ckpt.index"))


def copy_rgb_cache(source_root: Path, target_root: Path, ir: bool = True) -> None:
    """Give ``target_root`` the imported rgb_kinetics Keras cache and (with ``ir``) its converted OpenVINO IR,
    both made once per run by the session's fixture; ``ir=False`` where converting is what a test is about."""
    from i3d.weights.sets import get_weight_set

    _copy_set(get_weight_set("rgb", "kinetics"), source_root, target_root, ir)


def _copy_set(ws, source_root: Path, target_root: Path, ir: bool) -> None:
    """Copy ``ws``'s checkpoint folder (if any), Keras cache and (with ``ir``) float32 IR between stores."""
    from i3d.runtime.ir import ir_dir
    from i3d.weights.store import WeightStore

    source, target = WeightStore(source_root), WeightStore(target_root)
    target_root.mkdir(parents=True, exist_ok=True)
    for path in (source.keras_cache(ws), source.keras_record(ws)):
        if path.is_file():
            shutil.copyfile(path, target_root / path.name)
    if source.checkpoint_dir(ws).is_dir():
        shutil.copytree(source.checkpoint_dir(ws), target.checkpoint_dir(ws), dirs_exist_ok=True)
    if ir:
        target.openvino_dir.mkdir(exist_ok=True)
        shutil.copytree(ir_dir(ws, source), ir_dir(ws, target))


def _stand_in_flow_set_in(store_root: Path):
    """The WeightSet pinning the flow stand-in checkpoint found in ``store_root``."""
    from i3d.files import sha256_file
    from i3d.weights.sets import get_weight_set

    ws = get_weight_set("flow", "kinetics")
    return dataclasses.replace(ws, index_sha256=sha256_file(store_root / ws.deepmind_name / "model.ckpt.index"))


def build_stand_in_flow(store_root: Path) -> None:
    """A flow_scratch stand-in in ``store_root`` (seeded random weights in DeepMind's layout), imported into its
    Keras cache and converted to its OpenVINO IR (conftest's ``stand_in_flow`` makes it once per run)."""
    from i3d.runtime.ir import float_model
    from i3d.weights.loading import LoadOptions
    from i3d.weights.store import WeightStore

    ws = stand_in_flow_set(store_root, seed=3)
    float_model(ws, WeightStore(store_root), LoadOptions(download=False))


def stand_in_flow_copy(source_root: Path, target_root: Path, ir: bool = True):
    """Give ``target_root`` the run's flow stand-in (checkpoint, Keras cache, and IR with ``ir``); returns the
    WeightSet that pins it (inject it with ``weight_sets={"flow": ...}``)."""
    ws = _stand_in_flow_set_in(source_root)
    _copy_set(ws, source_root, target_root, ir)
    return ws


def write_video(path, frames: int, fps: float = 25.0, width: int = 64, height: int = 48, seed: int = 0):
    """An MJPG .avi of textured frames with a bright square moving right 2 px per frame."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for i in range(frames):
        frame = background.copy()
        x = (4 + 2 * i) % (width - 12)
        frame[height // 3: height // 3 + 12, x:x + 12] = 250
        writer.write(frame)
    writer.release()
    return path


def counting_pairs(monkeypatch) -> list:
    """Wrap the one function that solves frame pairs; returns a log of how many pairs each call solved."""
    import i3d.preprocess.flow as flow_mod

    calls = []
    real = flow_mod._raw_flow

    def wrapped(*args, **kwargs):
        calls.append(len(args[0]) - 1)
        return real(*args, **kwargs)

    monkeypatch.setattr(flow_mod, "_raw_flow", wrapped)
    return calls


def write_labelled_videos(root: Path) -> Path:
    """Class folders with Kinetics names under ``root``: 4 good videos, a corrupt one and one too short."""
    for i, label in enumerate(("archery", "archery", "abseiling", "juggling balls")):
        (root / label).mkdir(parents=True, exist_ok=True)
        write_video(root / label / f"clip{i}.avi", 14 + i, seed=i)
    (root / "archery" / "broken.avi").write_bytes(b"not a video at all" * 10)
    write_video(root / "abseiling" / "short.avi", 4)
    return root


def decode_threads() -> int:
    """The FFmpeg threads setting of the process this runs in (for worker processes)."""
    from i3d.inputs import video

    return video._decode_threads


def half_a_result() -> None:
    """A pool task that starts sending a 1 MiB result on the pool's result pipe, sends 10 bytes of it and
    stops, as a worker ended mid-send leaves the pipe (the pool's worker loop is the calling frame)."""
    import struct
    import time

    results = sys._getframe(1).f_locals["result_queue"]
    os.write(results._writer.fileno(), struct.pack("!i", 1 << 20) + b"x" * 10)
    time.sleep(600)


def in_fresh_process(function, *args, timeout: float = 900) -> None:
    """Run ``function(*args)`` (a module-level test body) in a new interpreter; fail when it raises or dies.

    Its traceback, if any, is printed on stderr, which pytest shows with the failure.
    """
    import multiprocessing

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the child's TensorFlow start-up lines stay quiet
    child = multiprocessing.get_context("spawn").Process(target=function, args=args)
    child.start()
    child.join(timeout)
    if child.is_alive():
        child.kill()
        child.join()
        pytest.fail(f"{function.__name__} did not end within {timeout:g} s")
    assert child.exitcode == 0, f"{function.__name__} ended with exit code {child.exitcode}"


def tiny_top(rng, videos: int):
    """A stand-in for I3D's top small enough to fine-tune in a second: a 1x1x1 convolution named as Kinetics'
    logits layer over 8 channels, averaged; a linear head on those channels; ``videos`` videos of two float16
    windows of activations (2x2x2x8) each, and labels cycling through the 3 classes. Draws from ``rng`` in a
    fixed order, so a test's later draws stay the same. Returns (top, head, videos, labels)."""
    import keras

    from i3d.heads import StreamHead

    classes, channels = 3, 8
    clip = keras.Input((2, 2, 2, channels))
    logits = keras.layers.Conv3D(classes, 1, name="Logits.Conv3d_0c_1x1.conv_3d")(clip)
    top = keras.Model(clip, keras.layers.GlobalAveragePooling3D()(logits))
    linear = StreamHead(weight=rng.normal(size=(classes, channels)).astype(np.float32),
                        bias=rng.normal(size=classes).astype(np.float32),
                        mean=rng.normal(size=channels).astype(np.float32) * 0.1,
                        scale=rng.uniform(0.5, 2.0, channels).astype(np.float32))
    activations = [[rng.uniform(0, 2, (2, 2, 2, channels)).astype(np.float16) for _ in range(2)]
                   for _ in range(videos)]
    return top, linear, activations, np.array([0, 1, 2] * (videos // 3))


def random_head(classes: int = 3, seed: int = 0):
    """A linear head for rgb_kinetics with random weights over classes "class 0", "class 1"...; no settings
    pinned, so any feature settings may use it."""
    from i3d.heads import Head, StreamHead
    from i3d.weights.sets import get_weight_set

    rng = np.random.default_rng(seed)
    ws = get_weight_set("rgb", "kinetics")
    part = StreamHead(weight=rng.normal(size=(classes, 1024)).astype(np.float32),
                      bias=rng.normal(size=classes).astype(np.float32),
                      mean=rng.normal(size=1024).astype(np.float32) * 0.1,
                      scale=rng.uniform(0.5, 2.0, 1024).astype(np.float32))
    return Head(classes=tuple(f"class {i}" for i in range(classes)), streams={"rgb": part},
                weight_sets={"rgb": {"set": ws.name, "index_sha256": ws.index_sha256}}, settings={})

