"""Tests for the flow cache's integrity and failure handling, and for stopping flow worker processes:
checksummed entries, headers checked before loading, special files, stale temporaries, best-effort
reads and writes, and workers that end with their parent."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from support import ROOT, counting_pairs, skip_outside_ci

import i3d.caches as cache_entries
import i3d.preprocess.flow as flow_mod
from i3d.preprocess.flow import CACHE_TRAILER, FLOW_BOUND, compute_flow, iter_flow_pairs


def shifting_frames(n: int = 3, width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    """RGB frames of a blocky random texture moving 2 px right per frame."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.integers(0, 256, (height // 4, width // 4 + n, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
    return np.ascontiguousarray(np.stack([base[:, 2 * (n - t):2 * (n - t) + width] for t in range(n)]))


@pytest.fixture(autouse=True)
def fresh_sweeps(monkeypatch):
    """Every test sees its cache folders for the first time (stale-temporary sweeps are hourly per folder)."""
    monkeypatch.setattr(cache_entries, "_swept", {})


@pytest.fixture
def frames() -> np.ndarray:
    return shifting_frames()


@pytest.fixture
def reference(frames) -> np.ndarray:
    return compute_flow(frames, algorithm="dis", workers=1)


def cached(frames, cache, **kwargs) -> np.ndarray:
    return compute_flow(frames, algorithm="dis", workers=1, cache_dir=cache, **kwargs)


def only_entry(cache) -> str:
    names = os.listdir(cache)
    assert len(names) == 1 and names[0].endswith(".npy") and not names[0].startswith(".")
    return os.path.join(cache, names[0])


def cache_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "flow cache" in str(w.message)]


def test_entry_format_and_bit_identical_results(monkeypatch, tmp_path, frames, reference):
    calls = counting_pairs(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean cache warns about nothing
        first = cached(frames, tmp_path)
        second = cached(frames, tmp_path)
    assert calls == [2]  # the second run is served from the cache
    for out in (first, second):
        assert out.dtype == reference.dtype and out.shape == (2, 48, 64, 2)
        assert out.tobytes() == reference.tobytes()  # bit-identical with and without the cache
    path = only_entry(tmp_path)
    raw = open(path, "rb").read()
    body, trailer = raw[:-48], raw[-48:]
    assert trailer == CACHE_TRAILER + hashlib.sha256(body).digest()
    stored = np.load(path)  # still a plain .npy to numpy: the trailer follows the data
    assert stored.dtype == np.float32 and stored.shape == (2, 48, 64, 2)
    assert (stored / np.float32(FLOW_BOUND)).tobytes() == reference.tobytes()  # clipped pixels, scaled on use
    assert np.abs(stored).max() > 1  # pixels, not [-1, 1]
    assert len(body) == 128 + stored.nbytes  # v1.0 header, data, nothing else


def zero_megabyte_like(raw: bytes) -> bytes:
    """Zero a run of data bytes: every value stays finite and in range, only the checksum can tell."""
    return raw[:200] + bytes(8000) + raw[8200:]


CORRUPTIONS = {
    "zeroed data": (zero_megabyte_like, "checksum mismatch"),
    "one flipped bit": (lambda raw: raw[:5000] + bytes([raw[5000] ^ 1]) + raw[5001:], "checksum mismatch"),
    "wrong digest": (lambda raw: raw[:-1] + bytes([raw[-1] ^ 0xFF]), "checksum mismatch"),
    "no trailer (format 1)": (lambda raw: raw[:-48], "bytes where its header implies"),
    "truncated": (lambda raw: raw[:1000], "bytes where its header implies"),
    "extra byte": (lambda raw: raw + b"\0", "bytes where its header implies"),
    "garbage": (lambda raw: b"not an npy file at all", "unreadable .npy header"),
    "empty": (lambda raw: b"", "unreadable .npy header"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corrupt_entry_is_recomputed_and_replaced(monkeypatch, tmp_path, frames, reference, name):
    damage, reason = CORRUPTIONS[name]
    cached(frames, tmp_path)
    path = only_entry(tmp_path)
    good = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(damage(good))
    calls = counting_pairs(monkeypatch)
    with pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    messages = cache_warnings(record)
    assert len(messages) == 1 and "corrupt flow cache entry" in messages[0] and reason in messages[0]
    assert "\n" not in messages[0]
    assert calls == [2]
    assert out.tobytes() == reference.tobytes()
    assert open(only_entry(tmp_path), "rb").read() == good  # replaced by a fresh, identical entry


def write_header(path, header: dict, payload: bytes = b"\0" * 64) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(payload)


@pytest.mark.parametrize("header, reason", [
    ({"descr": "<f4", "fortran_order": False, "shape": (10**9, 10**9, 2)}, "expected float32 (2, 48, 64, 2)"),
    ({"descr": "<f8", "fortran_order": False, "shape": (2, 48, 64, 2)}, "header says float64"),
    ({"descr": "<f4", "fortran_order": True, "shape": (2, 48, 64, 2)}, "Fortran order"),
    ({"descr": "|O", "fortran_order": False, "shape": (2, 48, 64, 2)}, "header says object"),
    ({"descr": "<f4", "fortran_order": False, "shape": (2, 48, 64, 2)}, "bytes where its header implies"),
])
def test_header_checked_before_loading(monkeypatch, tmp_path, frames, reference, header, reason):
    cached(frames, tmp_path)
    path = only_entry(tmp_path)
    write_header(path, header)
    real_empty = np.empty

    def guarded_empty(shape, *args, **kwargs):  # nothing is allocated for a header that fails
        assert np.prod(shape) < 10**7, f"allocating {shape}"
        return real_empty(shape, *args, **kwargs)

    monkeypatch.setattr(flow_mod.np, "empty", guarded_empty)
    with pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    messages = cache_warnings(record)
    assert len(messages) == 1 and reason in messages[0]
    assert out.tobytes() == reference.tobytes()
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached(frames, tmp_path).tobytes() == reference.tobytes()  # repaired for good


def entry_path(tmp_path, frames) -> str:
    """Where ``frames``' DIS entry lives, found by computing it once and removing it again."""
    cached(frames, tmp_path)
    path = only_entry(tmp_path)
    os.remove(path)
    return path


class Blocked(BaseException):
    """Raised by Alarm; a BaseException so that no ``except OSError``/``Exception`` in the code swallows it."""


class Alarm:
    """Fail, rather than hang the test run, if the block takes over ``seconds`` (e.g. opening a FIFO)."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def __enter__(self):
        def timeout(*_):
            raise Blocked(f"still blocked after {self.seconds} s")

        self.previous = signal.signal(signal.SIGALRM, timeout)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_entry_is_never_opened(tmp_path, frames, reference):
    path = entry_path(tmp_path, frames)
    os.mkfifo(path)
    with Alarm(20), pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    messages = cache_warnings(record)
    assert len(messages) == 1 and "not a regular file; removed it" in messages[0]
    assert out.tobytes() == reference.tobytes()
    assert stat.S_ISREG(os.lstat(path).st_mode)  # replaced by a real entry
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached(frames, tmp_path).tobytes() == reference.tobytes()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_fifo_swapped_in_after_the_check_is_refused(monkeypatch, tmp_path, frames, reference):
    path = entry_path(tmp_path, frames)
    os.mkfifo(path)
    real_stat = os.stat

    def stale_stat(p, *args, **kwargs):  # as if a regular file was replaced by the FIFO just after stat
        result = real_stat(p, *args, **kwargs)
        if os.fspath(p) == path:
            return os.stat_result((stat.S_IFREG | 0o644, *result[1:]))
        return result

    monkeypatch.setattr(flow_mod.os, "stat", stale_stat)
    with Alarm(20), pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    monkeypatch.undo()
    messages = cache_warnings(record)
    assert len(messages) == 1 and "not a regular file" in messages[0]
    assert out.tobytes() == reference.tobytes()
    assert stat.S_ISREG(os.lstat(path).st_mode)


def test_folder_at_entry_path_bypasses_the_cache(tmp_path, frames, reference):
    path = entry_path(tmp_path, frames)
    os.mkdir(path)
    (tmp_path / os.path.basename(path) / "keep").write_text("user data")
    with pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    messages = cache_warnings(record)
    assert len(messages) == 1, messages  # one line: no second one for the write that is not tried
    assert "not a regular file, and it cannot be removed" in messages[0] and "computing without" in messages[0]
    assert out.tobytes() == reference.tobytes()
    assert (tmp_path / os.path.basename(path) / "keep").read_text() == "user data"


def test_stale_temporaries_are_swept(tmp_path, frames, reference):
    key = "ab" * 32
    old, fresh = time.time() - 2 * 3600, time.time() - 60
    names = {f".{key}.npy.k2j_9xq1.tmp.npy": old,  # a killed run's temporary: removed
             f".{key}.npy.abcd1234.tmp.npy": fresh,  # perhaps another run writing now: kept
             ".notes.txt.abcd1234.tmp.npy": old,  # not ours: kept
             f"{key}.npy": old}  # an entry, however old: kept
    for name, mtime in names.items():
        (tmp_path / name).write_bytes(b"x")
        os.utime(tmp_path / name, (mtime, mtime))
    (tmp_path / f".{key}.npy.dir00000.tmp.npy").mkdir()  # not a regular file: kept
    assert cached(frames, tmp_path).tobytes() == reference.tobytes()
    left = set(os.listdir(tmp_path))
    assert f".{key}.npy.k2j_9xq1.tmp.npy" not in left
    assert {f".{key}.npy.abcd1234.tmp.npy", ".notes.txt.abcd1234.tmp.npy", f"{key}.npy",
            f".{key}.npy.dir00000.tmp.npy"} < left and len(left) == 5  # plus the new entry


def test_sweep_failures_never_fail_the_run(monkeypatch, tmp_path, frames, reference):
    def no_scandir(path):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(flow_mod.os, "scandir", no_scandir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached(frames, tmp_path / "new").tobytes() == reference.tobytes()
        assert cached(frames, tmp_path / "new").tobytes() == reference.tobytes()


def disk_full_writer(monkeypatch, after: int = 4096) -> None:
    """Make cache writes fail with ENOSPC once ``after`` bytes of an entry are written."""
    real_write = cache_entries._HashingWriter.write

    def write(self, data):
        self.written = getattr(self, "written", 0) + len(memoryview(data).cast("B"))
        if self.written > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(self, data)

    monkeypatch.setattr(cache_entries._HashingWriter, "write", write)


def test_disk_full_mocked_is_one_warning(monkeypatch, tmp_path, frames, reference):
    disk_full_writer(monkeypatch)
    with pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    messages = cache_warnings(record)
    assert messages == [f"{tmp_path}: cannot write to the flow cache (No space left on device); continuing without it"]
    assert out.tobytes() == reference.tobytes()
    assert os.listdir(tmp_path) == []  # the partial temporary is gone


def test_disk_full_warns_once_per_folder_in_a_stream(monkeypatch, tmp_path):
    frames = shifting_frames(n=7)
    expected = compute_flow(frames, algorithm="dis", workers=1)
    disk_full_writer(monkeypatch)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("default")  # Python's usual filter: a repeated line is shown once
        out = list(iter_flow_pairs(range(7), lambda i: frames[i], algorithm="dis", workers=1, cache_dir=tmp_path,
                               chunk=2))
    assert len(cache_warnings(record)) == 1  # three chunks failed to write, one line
    assert np.stack([f for _, f in out[:-1]]).tobytes() == expected.tobytes()


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs: real ENOSPC from the kernel. Needs root and mount."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        skip_outside_ci("mounting a tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        skip_outside_ci("mount/umount not available")
    folder = tmp_path / "tiny"
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        skip_outside_ci(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_disk_full_tmpfs(tiny_tmpfs):
    frames = shifting_frames(n=4, width=64, height=64)  # 3 pairs: 96 KiB of flow, more than the 64 KiB disk
    expected = compute_flow(frames, algorithm="dis", workers=1)
    with pytest.warns(UserWarning) as record:
        out = cached(frames, tiny_tmpfs)
    messages = cache_warnings(record)
    assert len(messages) == 1 and "No space left on device" in messages[0]
    assert out.tobytes() == expected.tobytes()
    assert os.listdir(tiny_tmpfs) == []
    small = shifting_frames(n=2, width=64, height=48)  # 24 KiB: fits, so the cache works again
    first = cached(small, tiny_tmpfs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached(small, tiny_tmpfs).tobytes() == first.tobytes()


def test_unreadable_entry_is_left_alone(monkeypatch, tmp_path, frames, reference):
    cached(frames, tmp_path)
    path = only_entry(tmp_path)
    good = open(path, "rb").read()
    real_open = os.open

    def denied(p, *args, **kwargs):
        if os.fspath(p) == path:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(p, *args, **kwargs)

    monkeypatch.setattr(flow_mod.os, "open", denied)
    with pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    assert cache_warnings(record) == [f"{path}: cannot read flow cache entry (Permission denied); "
                                      "computing without the cache"]
    assert out.tobytes() == reference.tobytes()
    assert open(path, "rb").read() == good  # neither deleted nor rewritten


def test_cache_folder_that_is_a_file(tmp_path, frames, reference):
    not_a_folder = tmp_path / "flow"
    not_a_folder.write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning) as record:
        out = cached(frames, not_a_folder)
    messages = cache_warnings(record)
    assert len(messages) == 1 and "Not a directory" in messages[0]
    assert out.tobytes() == reference.tobytes()
    assert not_a_folder.read_text() == "a file where the cache folder should be"


def test_read_only_folder(monkeypatch, tmp_path, frames, reference):
    import i3d.files

    def read_only(*args, **kwargs):  # root ignores permission bits, so the file system's answer is mocked
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(i3d.files.tempfile, "mkstemp", read_only)
    with pytest.warns(UserWarning) as record:
        out = cached(frames, tmp_path)
    assert cache_warnings(record) == [f"{tmp_path}: cannot write to the flow cache (Read-only file system); "
                                      "continuing without it"]
    assert out.tobytes() == reference.tobytes() and os.listdir(tmp_path) == []


# --- worker processes -----------------------------------------------------------------------------------------

WORKER_SCRIPT = textwrap.dedent("""\
    import signal
    import sys

    import numpy as np

    from i3d.preprocess.flow import compute_flow

    if __name__ == "__main__":  # spawned workers re-import this file as __mp_main__
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # as a service's SIGTERM handler would
        rng = np.random.default_rng(0)
        size = 2048  # one pair of OpenCV's TV-L1 takes minutes single-threaded: far longer than the test waits
        base = np.kron(rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))
        frames = np.stack([np.roll(base, 2 * t, axis=1) for t in range(9)])
        print("started", flush=True)
        try:
            compute_flow(frames, algorithm="tvl1-opencv", workers=2)
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(130)
        print("finished", flush=True)
""")


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def children_of(parent: int) -> dict[int, tuple[str, bool]]:
    """pid -> (start time, is a multiprocessing spawn worker) for each child of ``parent``."""
    found = {}
    for name in os.listdir("/proc"):
        fields = proc_stat(int(name)) if name.isdigit() else None
        if fields and int(fields[1]) == parent:
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    worker = b"spawn_main" in f.read()
            except OSError:
                continue
            found[int(name)] = (fields[19], worker)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far; 0 if it is gone."""
    fields = proc_stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def still_running(pid: int, start: str) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[19] == start and fields[0] not in "ZX"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("how, code", [("SIGINT", 130), ("Ctrl-C", 130), ("SIGTERM", 143), ("SIGKILL", -9)])
def test_workers_stop_with_the_parent(tmp_path, how, code):
    """SIGINT/Ctrl-C (KeyboardInterrupt) and SIGTERM (SystemExit) end the workers at once; a parent killed
    outright takes them with it (PR_SET_PDEATHSIG)."""
    script = tmp_path / "flow_script.py"
    script.write_text(WORKER_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    kids: dict[int, tuple[str, bool]] = {}
    try:
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 30
        while sum(worker for _, worker in kids.values()) < 2:
            assert time.monotonic() < deadline and proc.poll() is None, "the workers did not start"
            time.sleep(0.05)
            kids = children_of(proc.pid)
        kids = children_of(proc.pid)
        workers = [pid for pid, (_, worker) in kids.items() if worker]
        assert len(workers) == 2
        while not all(cpu_seconds(pid) >= 1 for pid in workers):  # past their imports (0.3 s), deep in a pair
            assert time.monotonic() < deadline + 60 and proc.poll() is None, "the workers did not start computing"
            time.sleep(0.05)
        sent = time.monotonic()
        if how == "Ctrl-C":  # the terminal signals the whole foreground group, workers included
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, getattr(signal, how))
        # a parent that waited for its workers' pairs (minutes each) would still be running when this times out
        out, err = proc.communicate(timeout=30)
        print(f"{how}: exited {proc.returncode} after {time.monotonic() - sent:.2f} s")
        assert proc.returncode == code, err
        assert "finished" not in out
        if how in ("SIGINT", "Ctrl-C"):
            assert out.strip().endswith("interrupted")
        if how != "SIGKILL":
            assert "Traceback" not in err, err  # workers ignore SIGINT: no tracebacks from them
        deadline = time.monotonic() + 30  # they end at once; this only bounds the wait on a loaded machine
        while any(still_running(pid, start) for pid, (start, _) in kids.items()) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = [pid for pid, (start, _) in kids.items() if still_running(pid, start)]
        assert survivors == [], f"child processes still running {time.monotonic() - sent:.1f} s after {how}"
    finally:
        for pid, (start, _) in kids.items():  # never leave a computing worker behind, even on failure
            if still_running(pid, start):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
