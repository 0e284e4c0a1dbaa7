"""The README's claims about i3d live that test_live.py leaves out: --events with --smooth and --threshold,
--head and --duration on the command line, --type both, Ctrl-C and SIGTERM (exit 130/143, the summary line, the
recording kept), and a network stream that reconnects with its clock going on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from support import ROOT, random_head, write_video

from i3d.errors import InputError
from i3d.inputs.live import LiveOptions, iter_live_frames, parse_source
from i3d.preprocess.windows import VideoOptions


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


@pytest.mark.slow  # two passes over 2 s of video, one in the command
def test_events_smooth_threshold_head_and_duration_on_the_command_line(tmp_path, shared_weights_dir, recognizer,
                                                                       monkeypatch, capsys):
    """README: --events prints only when the top class of the last --smooth windows' mean probabilities changes
    (above --threshold); --head answers over the head's classes; --duration S stops after S seconds of stream.
    The events are worked out here from the head applied by hand to the library's features of the same windows."""
    from i3d.commands.live import main

    video = write_video(tmp_path / "v.avi", 75, width=320, height=256)  # 3 s; --duration 2 keeps 2 s of it
    import dataclasses

    head = random_head(3, seed=1)
    soft = dataclasses.replace(head.streams["rgb"], weight=head.streams["rgb"].weight * 0.02)  # no class is sure
    head = dataclasses.replace(head, streams={"rgb": soft})
    head.save(tmp_path / "head")
    features = recognizer.features(video, video=VideoOptions(window=16, stride=8, max_frames=50)).features["rgb"]
    count = len(features)  # the windows of the first 2 s, as a file's: every 8 frames, and one ending at 2 s
    assert count == (50 - 16) // 8 + 1 + 1
    part = head.streams["rgb"]
    logits = ((features.astype(np.float64) - part.mean) / part.scale) @ part.weight.T.astype(np.float64) + part.bias
    smooth = 2
    means = [np.mean([_softmax(row) for row in logits[max(0, i - smooth + 1):i + 1]], axis=0) for i in range(count)]
    tops = sorted(m.max() for m in means)
    gap = int(np.argmax(np.diff(tops)))  # the threshold in the widest gap: some windows above it, some below,
    threshold = float((tops[gap] + tops[gap + 1]) / 2)  # none near it (float32 on the command's side)
    assert tops[gap + 1] - tops[gap] > 1e-3, tops
    want, current = [], None
    for i, mean in enumerate(means):
        label = head.classes[int(np.argmax(mean))] if mean.max() >= threshold else None
        if label != current:
            want.append((i, label))
            current = label
    assert want
    monkeypatch.setenv("I3D_WEIGHTS_DIR", str(shared_weights_dir))
    code = main([str(video), "--head", str(tmp_path / "head"), "--duration", "2", "--window", "16", "--stride", "8",
                 "--events", "--smooth", str(smooth), "--threshold", f"{threshold!r}", "--format", "jsonl",
                 "--offline"])
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["window"], r["event"]) for r in rows] == want
    for row in rows:
        assert row["end"] <= 2.0 + 1e-9
        probabilities = _softmax(logits[row["window"]])
        for p in row["top"]:
            assert p["label"] == head.classes[p["index"]]
            assert p["probability"] == pytest.approx(probabilities[p["index"]], abs=1e-4)
    assert f"summary: {count} windows, 0 skipped" in err  # --duration 2: the windows within 2 s, no more


@pytest.mark.slow  # two streams (a stand-in flow network) through live and through classify
def test_both_streams_live_give_classify_windows(tmp_path, shared_weights_dir, stand_in_flow):
    """README: with --type both, each frame pair's flow is computed once as the frames go by; each window's
    answer is the file's (classify's) at the same times."""
    from support import copy_rgb_cache, stand_in_flow_copy

    from i3d.tasks.live import live
    from i3d.tasks.recognizer import Recognizer
    from i3d.weights.store import WeightStore

    store = WeightStore(tmp_path / "weights")
    copy_rgb_cache(shared_weights_dir, store.root)
    flow = stand_in_flow_copy(stand_in_flow, store.root)
    both = Recognizer.load(("rgb", "flow"), weight_sets={"flow": flow}, store=store)
    video = write_video(tmp_path / "v.avi", 40, width=320, height=256)
    options = VideoOptions(window=16, stride=16, flow_algorithm="dis")
    results = list(live(both, str(video), video=options, options=LiveOptions(duration=1.28)))
    want = both.classify(video, video=VideoOptions(window=16, stride=16, max_frames=32, flow_algorithm="dis"))
    assert [r.start for r in results] == pytest.approx([0.0, 0.64]) and len(want.windows) == 2
    for mine, theirs in zip(results, want.windows):
        np.testing.assert_allclose(mine.logits, theirs.logits, atol=1e-5)


@pytest.mark.slow  # a command run in real time, stopped by a signal
@pytest.mark.parametrize("sent, code, line", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_and_sigterm_print_the_summary_and_keep_the_recording(tmp_path, shared_weights_dir, sent, code, line):
    """README: on Ctrl-C (130) and SIGTERM (143) a summary line goes to stderr, and the --annotate recording is kept.
    The signal is sent once the first window has been answered (its line read), so it stops a run in progress."""
    import av

    video = write_video(tmp_path / "v.avi", 1000, width=320, height=256)  # 40 s played in real time
    env = {**os.environ, "I3D_WEIGHTS_DIR": str(shared_weights_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "i3d", "live", str(video), "--realtime", "--window", "16",
                             "--stride", "8", "--format", "jsonl", "--annotate", str(tmp_path / "rec.mp4"),
                             "--offline"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(180, proc.kill)  # a run that never answers fails the test instead of hanging it
    watchdog.start()
    try:
        first = proc.stdout.readline()  # blocks until the first answer
        assert first, proc.stderr.read()
        sent_at = time.monotonic()
        proc.send_signal(sent)
        rest, stderr = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
        proc.kill()
    print(f"exited {proc.returncode} {time.monotonic() - sent_at:.2f} s after the signal")
    assert proc.returncode == code, stderr
    answered = 1 + len(rest.splitlines())
    lines = stderr.splitlines()
    assert lines[-1] == line and lines[-2].startswith(f"summary: {answered} windows, "), stderr
    assert json.loads(first)["window"] == 0
    with av.open(str(tmp_path / "rec.mp4")) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert 16 <= frames < 1000  # at least the first window's frames; stopped before the end


class Twice(threading.Thread):
    """Serves a file's bytes to two clients one after the other (as a camera that drops once and comes back,
    its stream starting again), then closes the port."""

    def __init__(self, data: bytes) -> None:
        super().__init__(daemon=True)
        self.data = data
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def run(self) -> None:
        self.listener.settimeout(60)
        try:
            for _ in range(2):
                client, _ = self.listener.accept()
                with client:
                    client.sendall(self.data)
        except OSError:
            pass
        finally:
            self.listener.close()


def test_a_stream_that_comes_back_goes_on_with_its_clock(tmp_path):
    """README: a network stream that drops is opened again, its clock going on where it stopped: the second
    connection's frames (the same stream again, its own clock starting at 0) follow the first's at 25 fps."""
    import av

    path = tmp_path / "stream.ts"
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(25):
            image = np.full((48, 64, 3), 10 * i, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    server = Twice(path.read_bytes())
    server.start()
    frames = []
    with pytest.raises(InputError, match="did not come back after 1 reconnection"):
        for image, seconds in iter_live_frames(parse_source(f"tcp://127.0.0.1:{server.port}"),
                                               LiveOptions(reconnect=1, open_timeout=5)):
            frames.append((image, seconds))
    assert len(frames) == 50  # both connections' 25 frames
    np.testing.assert_allclose([s for _, s in frames], np.arange(50) * 0.04, atol=1e-6)
    for i in range(25):  # the second connection's frames are the stream again, not the first's repeated
        np.testing.assert_array_equal(frames[25 + i][0], frames[i][0])
