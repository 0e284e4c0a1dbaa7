"""i3d serve against slow clients, swapped paths and malformed bodies, on real sockets to a real server process.

One server (--concurrency 1 --queue 1, one-second header and read timeouts) answers the module's tests but
the drain's, which stops a server of its own with SIGTERM while an upload stalls. Flags are checked in a
process of their own, to see that TensorFlow is not imported before a usage error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support import ROOT, needs_video, write_video
from test_serve import Served
from test_serve_frame_limit import forge

pytestmark = needs_video

JSON = {"Content-Type": "application/json"}
MISSING = json.dumps({"path": "missing.avi"}).encode()  # admitted, then 404: no network run
HOLD_FRAMES = 10100  # decoded up to --max-seconds 400 (10,000 frames at 25 fps) and refused: holds the one slot
STALLED = (b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xx\r\n"
           b"Content-Length: 100000\r\n\r\n--xx\r\nContent-Disposition: form-data; name=\"video\"; "
           b"filename=\"a.avi\"\r\n\r\nRIFF" + b"\0" * 4000)  # the start of a 100,000-byte body, then nothing


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    allowed = tmp_path_factory.mktemp("allowed").resolve()
    (allowed / "sub").mkdir()
    write_video(allowed / "sub" / "clip.avi", 5, width=32, height=32)  # too short for I3D: 422 before the network
    forge(write_video(allowed / "held.avi", HOLD_FRAMES, width=32, height=32), 20, HOLD_FRAMES)
    os.mkfifo(allowed / "fifo.avi")
    outside = tmp_path_factory.mktemp("outside").resolve()
    (outside / "clip.avi").write_bytes(b"RIFF\0\0\0\0AVI not a video")
    return {"allowed": allowed, "outside": outside}


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_weights_dir, folders):
    served = Served(shared_weights_dir, tmp_path_factory.mktemp("uploads"), "--concurrency", "1", "--queue", "1",
                    "--header-timeout", "1", "--read-timeout", "1", "--max-seconds", "400",
                    "--allow-dir", str(folders["allowed"]))
    yield served
    assert served.stop() == 0


def metric(server: Served, line_start: str) -> float:
    status, _, raw = server.request("GET", "/metrics")
    assert status == 200
    [value] = [line.split()[-1] for line in raw.decode().splitlines() if line.startswith(line_start + " ")]
    return float(value)


def connect(server: Served, sent: bytes = b"") -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=30)
    if sent:
        sock.sendall(sent)
    return sock


def reply(sock: socket.socket) -> tuple[int | None, dict | None]:
    """(status, JSON body) the server sends before it closes ``sock``; (None, None) when it sends nothing."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    if not data:
        return None, None
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    return int(head.split()[1]), json.loads(body)


def post_json(server: Served, body: dict) -> tuple[int, dict]:
    status, _, raw = server.request("POST", "/v1/classify", json.dumps(body).encode(), JSON, timeout=60)
    return status, json.loads(raw)


def test_stalled_uploads_are_answered_408_and_free_their_slots(server):
    before = metric(server, 'i3d_timeouts_total{phase="body"}')
    stalled = [connect(server, STALLED) for _ in range(2)]  # all of --concurrency 1 --queue 1
    for sock in stalled:
        status, answer = reply(sock)
        assert (status, answer["kind"]) == (408, "timeout") and "--read-timeout" in answer["error"], answer
    status, _, raw = server.request("POST", "/v1/classify", MISSING, JSON)
    assert status == 404, raw  # admitted: the stalled two hold no slot
    assert metric(server, 'i3d_timeouts_total{phase="body"}') == before + 2
    assert server.uploads() == []


def test_idle_connections_are_closed_and_lock_no_one_out(server):
    before = metric(server, 'i3d_timeouts_total{phase="headers"}')
    silent = [connect(server) for _ in range(30)]
    partial = [connect(server, b"POST /v1/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-") for _ in range(30)]
    status, _, raw = server.request("POST", "/v1/classify", MISSING, JSON)
    assert status == 404, raw
    assert [reply(sock) for sock in silent] == [(None, None)] * 30  # closed without a word
    for sock in partial:
        status, answer = reply(sock)
        assert (status, answer["kind"]) == (408, "timeout") and "--header-timeout" in answer["error"], answer
    assert metric(server, 'i3d_timeouts_total{phase="headers"}') == before + 60


def _holding(pid: int, path: Path) -> int:
    """How many descriptors the process ``pid`` holds open on ``path``."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == str(path)
        except FileNotFoundError:
            continue
    return count


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_a_path_swapped_while_queued_is_read_as_it_was_checked(server, folders):
    allowed, pid = folders["allowed"], server.process.pid
    answers = {}

    def ask(key: str, path: str) -> None:
        answers[key] = post_json(server, {"path": path})

    holder = threading.Thread(target=ask, args=("held", "held.avi"))
    holder.start()
    # its file is open: the first request holds the slot by the time the server reads the next one
    _wait_for(lambda: _holding(pid, allowed / "held.avi") >= 1, "the first request never came")
    queued = threading.Thread(target=ask, args=("queued", "sub/clip.avi"))
    queued.start()
    _wait_for(lambda: _holding(pid, allowed / "sub" / "clip.avi") >= 1, "the second request was never checked")
    (allowed / "sub").rename(allowed / "sub.checked")
    (allowed / "sub").symlink_to(folders["outside"], target_is_directory=True)
    assert metric(server, "i3d_queue_depth") == 1  # the swap came while it waited for the slot
    holder.join(60)
    queued.join(60)
    status, answer = answers["held"]
    assert (status, answer["kind"]) == (413, "input") and "over 10000 frames" in answer["error"], answer
    status, answer = answers["queued"]
    assert status == 422 and answer["error"].startswith("sub/clip.avi: video has 5 frames"), answer
    status, answer = post_json(server, {"path": "sub/clip.avi"})
    assert (status, answer["kind"]) == (403, "forbidden"), answer  # asked now, it lies outside


def test_a_fifo_or_a_folder_is_refused_without_blocking(server):
    for path in ("fifo.avi", "sub.checked", "sub"):
        status, answer = post_json(server, {"path": path})
        assert status in (403, 404) and answer["kind"] in ("forbidden", "input"), (path, answer)
    status, answer = post_json(server, {"path": "fifo.avi"})
    assert (status, answer["error"]) == (404, "fifo.avi: not a regular file under the served folder")


@pytest.mark.parametrize("case", ["nul", "long path", "long name", "deep nesting", "lone surrogate"])
def test_malformed_json_bodies_are_400(server, case):
    body = {"nul": json.dumps({"path": "clip\0.avi"}).encode(),
            "lone surrogate": json.dumps({"path": "\udcff.avi"}).encode(),
            "long path": json.dumps({"path": "a/" * 2500 + "clip.avi"}).encode(),
            "long name": json.dumps({"path": "b" * 300 + ".avi"}).encode(),
            "deep nesting": b"[" * 30000 + b"]" * 30000}[case]
    status, _, raw = server.request("POST", "/v1/classify", body, JSON)
    answer = json.loads(raw)
    assert (status, answer["kind"]) == (400, "usage") and "\n" not in answer["error"], answer


def test_a_form_without_its_closing_boundary_is_400(server):
    body = b'--xx\r\nContent-Disposition: form-data; name="video"; filename="a.avi"\r\n\r\nRIFF\0\0\0\0AVI '
    status, _, raw = server.request("POST", "/v1/classify", body,
                                    {"Content-Type": "multipart/form-data; boundary=xx"})
    assert (status, json.loads(raw)) == (400, {"error": "the multipart body ends before its closing boundary; "
                                                        "send the whole form", "kind": "usage"})
    assert server.uploads() == []


def test_library_log_lines_are_the_servers_own(server):
    seen = len(server.lines)
    sock = connect(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    sock.close()
    status, _, raw = server.request("POST", "/v1/classify", b"--xx\r\nBad Header\r\n\r\n",
                                    {"Content-Type": "multipart/form-data; boundary=xx"})
    assert status == 400 and "malformed" in json.loads(raw)["error"]
    _wait_for(lambda: len(server.lines) >= seen + 2, "the libraries logged nothing")
    assert server.lines[seen:] == ["warning: uvicorn: Invalid HTTP request received.",
                                   "warning: python_multipart: Found invalid character 32 in header at 9"]


@pytest.mark.slow  # a server of its own, stopped
def test_sigterm_cuts_a_stalled_upload_after_the_drain_timeout(tmp_path, shared_weights_dir):
    served = Served(shared_weights_dir, tmp_path, "--read-timeout", "60", "--drain-timeout", "1")
    sock = connect(served, STALLED)
    _wait_for(lambda: len(served.uploads()) == 1, "the upload never started")
    [folder] = list(tmp_path.iterdir())
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0  # well inside the stalled upload's own 60 s
    status, answer = reply(sock)
    assert (status, answer["kind"]) == (503, "busy") and "cut 1 s after SIGTERM" in answer["error"], answer
    assert not folder.exists()
    assert served.lines[-1] == ("stopped: 1 request(s) not done 1 s after SIGTERM were cut (503; --drain-timeout) "
                                "and their uploads removed")


CHECK_FLAGS = """
import contextlib, io, json, runpy, sys
results = []
for flags in json.loads(sys.argv[1]):
    sys.argv = ["i3d", "serve", "--offline", *flags]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            runpy.run_module("i3d", run_name="__main__")
    except SystemExit as exit:
        results.append([exit.code, err.getvalue()])
print(json.dumps({"results": results, "tensorflow": "tensorflow" in sys.modules}))
"""


def test_flags_are_checked_before_tensorflow_loads(tmp_path):
    cases = {("--concurrency", "0"): "--concurrency must be between 1 and 64",
             ("--read-timeout", "0"): "--read-timeout must be above 0",
             ("--header-timeout", "nan"): "--header-timeout must be above 0",
             ("--drain-timeout", "-1"): "--drain-timeout must be above 0",
             ("--port", "70000"): "--port must be between 0 and 65535",
             ("--allow-dir", str(tmp_path / "none")): "is not a folder",
             ("--pretrain", "kinetics600", "--type", "both"): "--pretrain kinetics600 has RGB"}
    done = subprocess.run([sys.executable, "-c", CHECK_FLAGS, json.dumps([list(flags) for flags in cases])],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "I3D_WEIGHTS_DIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["tensorflow"] is False
    for (code, stderr), words in zip(report["results"], cases.values()):
        assert code == 2 and stderr.count("\n") == 1 and words in stderr, (words, stderr)
