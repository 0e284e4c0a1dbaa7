"""i3d live on loopback: a real clip looped for ``--seconds`` at 25 fps as MPEG-TS over tcp://127.0.0.1.

    .venv/bin/python benchmarks/live_benchmark.py [--seconds 60] [--runs rgb:fp32:16 rgb:int8:8 both:int8:25]
    PYTHONPATH=tests .venv/bin/python benchmarks/live_benchmark.py --stand-in-flow --runs both:int8:25
    PYTHONPATH=tests .venv/bin/python benchmarks/live_benchmark.py --stand-in-flow --flow-algorithm dis --runs both:int8:25

For each run (type:precision:stride, window 64) it prints windows answered per second, latency
p50/p95/max (from the window's last frame arriving, decoded, to its answer), the same from the
server sending that frame (which adds the demuxer's and decoder's frames of delay), windows
skipped and the CPU busy share (this process's CPU seconds over the wall seconds times the cores).
The stream is the arm-wrestling sample scaled to 340x256, encoded once to MPEG-2 in MPEG-TS and
sent as an encoder sends it: each frame's packets at that frame's time. Prints the CPU first.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import threading
import time
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT.parent / "shared" / "samples" / "arm_wrestling.mp4"


def encode_loop(path: Path, seconds: float) -> None:
    """The clip, looped to ``seconds`` at 25 fps, 340x256, as MPEG-TS."""
    import av
    import cv2

    from i3d.inputs.video import iter_video

    frames = [f for f, _, _ in iter_video(CLIP, prepare=lambda f: cv2.resize(f, (340, 256)))]
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 340, 256, "yuv420p"
        stream.options = {"qscale": "3"}
        for n in range(int(seconds * 25)):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[n % len(frames)], format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def frame_schedule(path: Path) -> list[tuple[float, int]]:
    """(seconds from the first frame, byte offset where its packet ends) for each frame of the MPEG-TS file."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = [(float(p.dts * p.time_base), p.pos) for p in container.demux(stream)
                   if p.dts is not None and p.pos is not None]
    first = packets[0][0]
    size = path.stat().st_size
    return [(dts - first, packets[n + 1][1] if n + 1 < len(packets) else size) for n, (dts, _) in enumerate(packets)]


def serve(data: bytes, schedule: list[tuple[float, int]], sent_at: list[float]) -> int:
    """Send ``data`` to the first client as an encoder would: each frame's bytes at that frame's time (so
    at 25 fps, one frame at a time, not in bursts of several); returns the port. ``sent_at`` gets each
    frame's time.time() when it was sent."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        client, _ = listener.accept()
        started = time.monotonic()
        wall = time.time()
        sent = 0
        with client:
            for seconds, until in schedule:
                wait = started + seconds - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                client.sendall(data[sent:until])
                sent_at.append(wall + time.monotonic() - started)
                sent = until
        listener.close()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", nargs="*", default=["rgb:fp32:16", "rgb:int8:8", "both:int8:25"])
    parser.add_argument("--flow-algorithm", default="tvl1", help="for two-stream runs (tvl1, dis...)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/i3d-live-benchmark"))
    parser.add_argument("--stand-in-flow", action="store_true",
                        help="time two-stream runs on random flow weights in DeepMind's layout (DeepMind's flow "
                             "sets are not reachable offline): the answers mean nothing, the speed is the real "
                             "network's; needs the tests' helpers: PYTHONPATH=tests")
    args = parser.parse_args()

    from i3d.errors import InputError
    from i3d.inputs.live import LiveOptions
    from i3d.preprocess.windows import VideoOptions
    from i3d.runtime.base import EngineOptions
    from i3d.tasks.live import LiveSummary, live
    from i3d.tasks.recognizer import Recognizer
    from i3d.weights.loading import LoadOptions

    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    stream = args.work / f"loop-{args.seconds:g}s.ts"
    if not stream.exists():
        encode_loop(stream, args.seconds)
    data, schedule = stream.read_bytes(), frame_schedule(stream)
    store, weight_sets = None, None
    if args.stand_in_flow:
        from support import copy_rgb_cache, stand_in_flow_set  # tests/support.py

        from i3d.weights.sets import get_weight_set
        from i3d.weights.store import WeightStore

        root = args.work / "weights"
        copy_rgb_cache(WeightStore.from_environment().root, root)
        store = WeightStore(root)
        weight_sets = {"rgb": get_weight_set("rgb", "kinetics"), "flow": stand_in_flow_set(root)}
        print("flow: a stand-in set (random weights in DeepMind's layout); two-stream answers mean nothing",
              flush=True)
    for run in args.runs:
        kind, precision, stride = run.split(":")
        streams = ("rgb", "flow") if kind == "both" else ("rgb",)
        try:
            recognizer = Recognizer.load(streams, load=LoadOptions(download=False), store=store,
                                         weight_sets=weight_sets if kind == "both" else None,
                                         engine=EngineOptions(precision=precision))
        except Exception as err:  # noqa: BLE001 - a set that is not here (flow) is reported, the others run
            print(f"{run}: not run ({err})", flush=True)
            continue
        sent_at: list[float] = []
        port = serve(data, schedule, sent_at)
        summary = LiveSummary()
        behind = []  # seconds from the window's last frame leaving the server to its answer
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        mark = time.monotonic()
        try:
            video = VideoOptions(window=64, stride=int(stride), flow_algorithm=args.flow_algorithm)
            for result in live(recognizer, f"tcp://127.0.0.1:{port}", video=video,
                               options=LiveOptions(reconnect=0), summary=summary):
                behind.append(result.wall - sent_at[round(result.end * 25) - 1])
        except InputError:  # the end of the loop: a live stream that ends has dropped
            pass
        wall = time.monotonic() - mark
        used = resource.getrusage(resource.RUSAGE_SELF)
        busy = (used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime) / (wall * os.cpu_count())
        figures = summary.as_json()
        print(f"{run}: {summary.windows / wall:.2f} windows/s, {figures['windows']} answered, {figures['skipped']} "
              f"skipped ({figures['skipped'] / max(1, figures['windows'] + figures['skipped']):.0%}); latency p50 "
              f"{figures['latency_p50']:.2f} s, p95 {figures['latency_p95']:.2f} s, max {figures['latency_max']:.2f} s; "
              f"from the server: p50 {np.percentile(behind, 50):.2f} s, p95 {np.percentile(behind, 95):.2f} s, "
              f"max {max(behind):.2f} s; CPU busy {busy:.0%}", flush=True)


if __name__ == "__main__":
    main()
