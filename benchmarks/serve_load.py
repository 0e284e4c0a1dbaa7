"""Load on `i3d serve` over loopback: 16 clients sending 4 devset clips each at once, against `i3d batch`.

    .venv/bin/python benchmarks/serve_load.py [--clients 16] [--each 4] [--clips 16] [--precision fp32]

One run on one machine prints: `i3d batch` on the clips (videos/s, with as many decoding workers as
cores), then the server under load (videos/s, latency p50/p95/max, statuses, the server's peak RSS from
/proc), the ratio of the two throughputs, and whether every answer's logits equal the batch's records
(to 1e-5, the records' rounding) with the same top-1. Bounded: clients x each requests, a timeout each.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from machine import cpu_name  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEVSET = ROOT.parent / "shared" / "devset"


def multipart(path: Path) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="video"; filename="{path.name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes()
    return body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def start_server(precision: str, concurrency: int) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-m", "i3d", "serve", "--port", "0", "--precision", precision,
                                "--concurrency", str(concurrency), "--queue", "256"], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        found = re.search(r"serving http://[\d.]+:(\d+)/", line)
        if found:
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()
            return process, int(found.group(1))
    raise SystemExit(f"the server did not start (exit {process.wait()})")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--each", type=int, default=4, help="clips each client sends, one after another")
    parser.add_argument("--clips", type=int, default=16, help="distinct devset clips used")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a request may take")
    args = parser.parse_args()

    from i3d.inputs.dataset_items import ListOptions
    from i3d.inputs.datasets import load_dataset
    from i3d.runtime.base import EngineOptions
    from i3d.tasks.batch.run import BatchOptions, run_batch
    from i3d.tasks.recognizer import Recognizer

    full = load_dataset(DEVSET / "labels.tsv", ListOptions(root=DEVSET / "clips", path_column="file",
                                                           label_column="kinetics_label"))
    items = sorted(full.items, key=lambda item: item.key)[:args.clips]
    dataset = dataclasses.replace(full, items=tuple(items), missing=())
    cores = len(os.sched_getaffinity(0))
    print(f"cpu {cpu_name()} x{os.cpu_count()} ({cores} usable); precision {args.precision}; {len(items)} clips")

    recognizer = Recognizer.load("rgb", engine=EngineOptions(precision=args.precision))
    with tempfile.TemporaryDirectory() as out:
        mark = time.perf_counter()
        run_batch(dataset, out, recognizer, options=BatchOptions(workers=cores))
        batch_s = time.perf_counter() - mark
        records = {}
        for item in items:
            record = json.loads(next(Path(out).rglob(f"{Path(item.key).name}.json")).read_text())
            records[Path(item.path).name] = record
    del recognizer
    batch_rate = len(items) / batch_s
    print(f"i3d batch: {len(items)} videos in {batch_s:.1f} s = {batch_rate:.3f} videos/s ({cores} workers)")

    process, port = start_server(args.precision, args.concurrency)
    bodies = {Path(item.path).name: multipart(Path(item.path)) for item in items}
    names = list(bodies)
    results: list[tuple[str, int, float, dict | None]] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        for j in range(args.each):
            name = names[(index * args.each + j) % len(names)]
            body, kind = bodies[name]
            began = time.perf_counter()
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
                connection.request("POST", "/v1/classify", body=body, headers={"Content-Type": kind})
                reply = connection.getresponse()
                status, answer = reply.status, json.loads(reply.read())
                connection.close()
            except Exception as err:  # counted as lost
                status, answer = -1, {"error": str(err)}
            with lock:
                results.append((name, status, time.perf_counter() - began, answer))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    mark = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load_s = time.perf_counter() - mark
    peak = peak_rss_mib(process.pid)
    process.send_signal(signal.SIGTERM)
    code = process.wait(120)

    sent = args.clients * args.each
    ok = [r for r in results if r[1] == 200]
    latencies = np.array([r[2] for r in ok]) if ok else np.array([np.nan])
    mismatched = 0
    for name, _, _, answer in ok:
        want = records[name]
        same = (np.max(np.abs(np.array(answer["logits"]) - np.array(want["logits"]))) <= 1e-5
                and answer["top"][0]["index"] == want["top"][0]["index"])
        mismatched += not same
    rate = len(ok) / load_s
    statuses = {}
    for _, status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    print(f"i3d serve: {args.clients} clients x {args.each} = {sent} requests, answered {len(results)}, "
          f"statuses {statuses}, in {load_s:.1f} s = {rate:.3f} videos/s (--concurrency {args.concurrency})")
    print(f"latency p50 {np.percentile(latencies, 50):.1f} s, p95 {np.percentile(latencies, 95):.1f} s, "
          f"max {latencies.max():.1f} s; server peak RSS {peak:.0f} MiB; exit after SIGTERM {code}")
    print(f"throughput serve / batch: {rate / batch_rate:.3f}; answers differing from the batch's records: "
          f"{mismatched} of {len(ok)}; lost or failed: {sent - len(ok)}")


if __name__ == "__main__":
    main()
