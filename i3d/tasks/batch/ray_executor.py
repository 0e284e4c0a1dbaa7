"""``executor="ray"`` (``--engine ray``): a dataset run on a Ray cluster, recorded exactly as a local run is.

What runs where:

* decoding, preprocessing and optical flow: one Ray task per video
  (``task_cpus`` each), retried when its worker dies;
* the network: ``actors`` model actors (``actor_cpus`` each), each holding its
  own :class:`~i3d.tasks.recognizer.Recognizer` loaded from ``weights_dir``;
  an actor that dies is restarted and the call it was running is retried;
* this process (the driver) is the only writer: it receives each video's
  result (and features) and writes ``results/<key>.json`` (and the feature
  files) with the local executor's own functions, so a video is recorded once.

The windows go from a task to an actor through Ray's object store, never
through the driver. Every node must see the videos, the weights folder and
``--out`` at the same paths (shared storage). The cluster itself (its sizes, joining it) is
:mod:`i3d.tasks.batch.ray_cluster`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from i3d.errors import I3DError, OptionError
from i3d.heads import Head
from i3d.inputs.dataset_items import VideoItem
from i3d.interrupts import keep_interrupts
from i3d.preprocess.windows import VideoOptions
from i3d.runtime.base import EngineOptions
from i3d.tasks.batch.ray_cluster import RayOptions, check_ray, check_size, connect, import_ray
from i3d.tasks.batch.video_work import Asked, Prepared, VideoOutcome, prepare_video, run_prepared
from i3d.tasks.recognizer import Recognizer
from i3d.weights.loading import LoadOptions
from i3d.weights.store import WeightStore

TASK_RETRIES = 3
"""Times a decoding task is run again after its worker process died."""
CALL_RETRIES = 3
"""Times a call to a model actor is run again after the actor died (the actor itself restarts without limit)."""
UNAVAILABLE_SECONDS = 180.0
"""How long a video's call is sent again while its actor is unreachable (its node gone, not yet declared dead, and
the actor not yet restarted elsewhere): Ray's own retries of such a call all fail within a second or two."""
ACTOR_PREFIX = "i3d-model-"
"""Model actors are named ``i3d-model-<run>-<n>``, so an operator (or a test) can find and kill one."""


class ModelActor:
    """One copy of the network on a Ray worker: windows in, the video's result (and features) out."""

    def __init__(self, stream_names: tuple[str, ...], weight_sets: dict, engine: EngineOptions, weights_dir: str,
                 head_dir: str | None = None) -> None:
        self.recognizer = Recognizer.load(stream_names, weight_sets=weight_sets,
                                          load=LoadOptions(download=False, progress=False), engine=engine,
                                          store=WeightStore(Path(weights_dir)),
                                          head=None if head_dir is None else Head.load(head_dir))

    def run(self, item: VideoItem, prepared: Prepared, asked: Asked) -> VideoOutcome:
        """One video's outcome from its prepared windows (or the reason it has none)."""
        return run_prepared(self.recognizer, item, prepared, asked)


def ray_outcomes(items: list[VideoItem], recognizer: Recognizer, video: VideoOptions, asked: Asked,
                 options: RayOptions) -> Iterator[VideoOutcome]:
    """Each item's outcome, in the order they finish, from decoding tasks and model actors on Ray.

    At most ``2 * actors`` videos wait on the actors and as many more are decoded ahead, so
    memory does not grow with the dataset. Stopping the iteration (Ctrl-C, an error) cancels
    the work in flight and removes the actors; a cluster started here is shut down.
    """
    check_ray(options)
    ray = import_ray()

    weights_dir = os.path.abspath(options.weights_dir or recognizer.store.root)
    head = recognizer.head
    if head is not None and head.path is None:
        raise OptionError("head", "the Ray run's actors load the head from its folder: save it first")
    head_dir = None if head is None else os.path.abspath(head.path)  # each actor checks it, sha256 and all
    stream_names = tuple(s.name for s in recognizer.streams)
    started = connect(ray, options)
    actors: list = []
    waiting = deque(items)
    preparing: dict = {}  # ref of prepared windows -> item
    prepared: deque = deque()  # (item, ref) decoded, waiting for an actor
    running: dict = {}  # ref of an actor's answer -> (item, actor index)
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        if options.address is not None:
            check_size(options, cpus, warn=True)
        run = uuid.uuid4().hex[:8]
        actor_class = ray.remote(ModelActor)
        actors = [actor_class.options(
            name=f"{ACTOR_PREFIX}{run}-{n}", num_cpus=options.actor_cpus, max_restarts=-1,
            max_task_retries=CALL_RETRIES).remote(stream_names, dict(recognizer.weight_sets), recognizer.engine,
                                                  weights_dir, head_dir) for n in range(options.actors)]
        prepare_task = ray.remote(prepare_video).options(num_cpus=options.task_cpus, max_retries=TASK_RETRIES)
        per_actor = 2  # one call running, one queued behind it
        task_slots = max(1, int((cpus - options.actors * options.actor_cpus) // options.task_cpus))
        ahead = task_slots + per_actor * options.actors  # decoded or decoding, not yet given to an actor
        load = [0] * len(actors)
        first = True
        while waiting or preparing or prepared or running:
            while waiting and len(preparing) + len(prepared) < ahead:
                item = waiting.popleft()
                preparing[prepare_task.remote(os.fspath(item.path), stream_names, video)] = item
            if first:  # the first videos decode while the actors load the network
                _wait_loaded(ray, actors)
                first = False
            while prepared and min(load) < per_actor:
                index = load.index(min(load))
                item, ref = prepared.popleft()
                running[actors[index].run.remote(item, ref, asked)] = (item, index, ref, None)
                load[index] += 1
            with keep_interrupts():  # SIGTERM stays SIGTERM through Ray's wait
                ready, _ = ray.wait([*preparing, *running], num_returns=1, fetch_local=False)
            for ref in ready:
                if ref in preparing:
                    prepared.append((preparing.pop(ref), ref))
                    continue
                item, index, windows, since = running.pop(ref)
                since = _unreachable_since(ray, ref, since)
                if since is not None and time.monotonic() - since < UNAVAILABLE_SECONDS:
                    time.sleep(1.0)  # the same call again, until the actor is back (restarted on another node)
                    running[actors[index].run.remote(item, windows, asked)] = (item, index, windows, since)
                    continue
                load[index] -= 1
                yield _answer(ray, ref, item)
    finally:
        for ref in [*preparing, *(ref for _, ref in prepared)]:
            _quietly(ray.cancel, ref, force=True)
        for ref in running:
            _quietly(ray.cancel, ref)
        for actor in actors:
            _quietly(ray.kill, actor, no_restart=True)
        if started:
            ray.shutdown()


def _quietly(action, *args, **kwargs) -> None:
    """Clean-up that must not hide the error that stopped the run."""
    try:
        action(*args, **kwargs)
    except Exception:
        pass


def _wait_loaded(ray, actors: list) -> None:
    """Wait until every model actor holds the network; one that cannot load it stops the run (I3DError)."""
    try:
        with keep_interrupts():
            ray.get([actor.__ray_ready__.remote() for actor in actors])
    except ray.exceptions.RayError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise I3DError(f"a Ray model actor could not load the network: {lines[-1] if lines else type(err).__name__}"
                       f" (do the nodes see the weights folder?)"[:400]) from None


def _unreachable_since(ray, ref, since: float | None) -> float | None:
    """When the call's actor was first found unreachable (now, if this answer is the first), or None when the
    answer is anything else."""
    try:
        with keep_interrupts():
            ray.get(ref, timeout=0)
    except ray.exceptions.ActorUnavailableError:
        return since if since is not None else time.monotonic()
    except Exception:  # noqa: BLE001 - any other answer is _answer's to read
        return None
    return None


def _answer(ray, ref, item: VideoItem) -> VideoOutcome:
    """An actor's answer; a video whose task or actor kept dying past its retries is failed, in one line."""
    try:
        with keep_interrupts():
            return ray.get(ref)
    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
            ray.exceptions.TaskCancelledError) as err:
        first = (str(err).strip().splitlines() or [""])[0]
        return VideoOutcome(item, error=f"ray: {type(err).__name__}: {first}"[:300])
