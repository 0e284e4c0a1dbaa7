"""``engine="ray"``: a dataset run on a Ray cluster, recorded exactly as the local engine records it.

What runs where:

* decoding, preprocessing and optical flow: one Ray task per video
  (``task_cpus`` each), retried when its worker dies;
* the network: ``actors`` model actors (``actor_cpus`` each), each holding its
  own :class:`~i3d.tasks.recognizer.Recognizer` loaded from ``weights_dir``;
  an actor that dies is restarted and the call it was running is retried;
* this process (the driver) is the only writer: it receives each video's
  result (and features) and writes ``results/<key>.json`` (and the feature
  files) with the local engine's own functions, so a video is recorded once.

The windows go from a task to an actor through Ray's object store, never
through the driver. Every node must see the videos, the weights folder and
``--out`` at the same paths (shared storage). Ray is imported only here and
only when a run asks for it (``pip install -e ".[ray]"``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import sys
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from i3d.errors import I3DError, OptionError
from i3d.files import reason
from i3d.interrupts import keep_interrupts
from i3d.preprocess.windows import VideoOptions
from i3d.processes import available_cores
from i3d.inputs.dataset_items import VideoItem
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.video_work import Prepared, prepare_video, run_prepared
from i3d.results import Features, Result

TASK_RETRIES = 3
"""Times a decoding task is run again after its worker process died."""
CALL_RETRIES = 3
"""Times a call to a model actor is run again after the actor died (the actor itself restarts without limit)."""
UNAVAILABLE_SECONDS = 180.0
"""How long a video's call is sent again while its actor is unreachable (its node gone, not yet declared dead, and
the actor not yet restarted elsewhere): Ray's own retries of such a call all fail within a second or two."""
ACTOR_PREFIX = "i3d-model-"
"""Model actors are named ``i3d-model-<run>-<n>``, so an operator (or a test) can find and kill one."""

Outcome = tuple[VideoItem, Result | None, Features | None, str | None, float, tuple[str, ...]]
"""A video's end: (item, result, features or None, error or None, seconds the actor spent)."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray run goes.

    ``address``: a cluster to join (``auto``, ``HOST:PORT``, ``ray://...``); None starts a local
    cluster of ``cpus`` CPUs (None: this machine's cores) for the run, or reuses the one this
    process is already connected to. ``actors`` model actors of ``actor_cpus`` CPUs each run the
    network; decoding tasks take ``task_cpus`` each. ``weights_dir``: where the actors read the
    weights (None: this process's weights folder; it must be the same path on every node).
    """

    address: str | None = None
    actors: int = 1
    actor_cpus: float = 1.0
    task_cpus: float = 1.0
    cpus: int | None = None
    weights_dir: str | None = None
    connect_timeout: float = 10.0  # seconds to wait for a cluster given by address to answer


def check_ray_options(options: RayOptions) -> RayOptions:
    """Refuse sizes no cluster could use (OptionError)."""
    if not 1 <= options.actors <= 1024:
        raise OptionError("ray_actors", f"must be between 1 and 1024, not {options.actors}")
    if not 0.01 <= options.actor_cpus <= 256:  # Ray counts CPUs in steps of 0.0001; a hundredth is a floor
        raise OptionError("ray_actor_cpus", f"must be between 0.01 and 256, not {options.actor_cpus}")
    if not 0.01 <= options.task_cpus <= 256:
        raise OptionError("ray_task_cpus", f"must be between 0.01 and 256, not {options.task_cpus}")
    if not 0.1 <= options.connect_timeout <= 3600:
        raise OptionError("ray_connect_timeout", f"must be between 0.1 and 3600 seconds, not {options.connect_timeout}")
    if options.cpus is not None and options.cpus < 1:
        raise OptionError("ray_cpus", f"must be at least 1, not {options.cpus}")
    return options


def check_ray(options: RayOptions) -> RayOptions:
    """Ray importable, sizes sane, and the cluster big enough for the actors and one decoding task (OptionError).

    The size is known for a local cluster and for one this process is connected to; a cluster
    joined by address is checked once joined (a warning: an autoscaler may still add nodes).
    """
    ray = import_ray()
    check_ray_options(options)
    if ray.is_initialized():
        _check_size(options, ray.cluster_resources().get("CPU", 0))
    elif options.address is None:
        _check_size(options, options.cpus or available_cores())
    return options


def _check_size(options: RayOptions, cpus: float, warn: bool = False) -> None:
    needed = options.actors * options.actor_cpus + options.task_cpus
    if needed > cpus:
        message = (f"{options.actors} (of {options.actor_cpus:g} CPU each) and a decoding task "
                   f"({options.task_cpus:g} CPU) need {needed:g} CPUs; the cluster has {cpus:g}")
        if not warn:
            raise OptionError("ray_actors", message)
        print(f"warning: --ray-actors {message}: the run waits until it has them", file=sys.stderr)


def import_ray():
    """The ``ray`` module, or a one-line OptionError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise OptionError("engine", 'ray needs Ray: pip install -e ".[ray]"') from None
    return ray


class ModelActor:
    """One copy of the network on a Ray worker: windows in, the video's result (and features) out."""

    def __init__(self, stream_names: tuple[str, ...], weight_sets: dict, engine, weights_dir: str,
                 head_dir: str | None = None) -> None:
        from i3d.heads import Head
        from i3d.weights.loading import LoadOptions
        from i3d.weights.store import WeightStore

        self.recognizer = Recognizer.load(stream_names, weight_sets=weight_sets,
                                          load=LoadOptions(download=False, progress=False), engine=engine,
                                          store=WeightStore(Path(weights_dir)),
                                          head=None if head_dir is None else Head.load(head_dir))

    def run(self, prepared: Prepared, top_k: int, fusion: str,
            features: bool) -> tuple[Result | None, Features | None, str | None, float, tuple[str, ...]]:
        """(result, features, error, seconds) for one video's prepared windows (or the reason it has none)."""
        return run_prepared(self.recognizer, prepared, top_k, fusion, features)


def _probe(address: str, timeout: float) -> None:
    """Refuse, within ``timeout`` seconds, a cluster address nothing answers on (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError("ray_address", f"is {address!r}; give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise OptionError("ray_address", f"{address}: no Ray cluster answers there within {timeout:g} s "
                                         f"({reason(err)}); check the address, or start the cluster with "
                                         "'ray start --head'") from None


def _connect(ray, options: RayOptions) -> bool:
    """Join or start the cluster; True when this call started one (and so must shut it down).

    Ray installs its own SIGTERM handler (which aborts with a stack dump); this process's is put
    back, so SIGTERM stops the run as Ctrl-C does: in one line, with the work in flight cancelled.
    """
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # never report usage; set before Ray starts anything
    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "include_dashboard": False, "logging_level": "WARNING",
             "configure_logging": True}
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if options.address is None:
            ray.init(address="local", num_cpus=options.cpus or available_cores(), **quiet)
            return True
        if options.address != "auto":
            _probe(options.address, options.connect_timeout)
        try:
            ray.init(address=options.address, **quiet)
        except ConnectionError as err:
            if options.address == "auto":
                raise OptionError("ray_address", "auto: no Ray cluster runs on this machine; start one with "
                                                 "'ray start --head', or leave --ray-address out to start one "
                                                 "for the run") from None
            raise OptionError("ray_address", f"{options.address}: Ray could not join it ({reason(err)})") \
                from None
        return True
    finally:
        for sig, handler in handlers.items():
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(sig, handler)


def ray_outcomes(items: list[VideoItem], recognizer: Recognizer, video: VideoOptions, top_k: int, fusion: str,
                 features: bool, options: RayOptions) -> Iterator[Outcome]:
    """Each item's outcome, in the order they finish, from decoding tasks and model actors on Ray.

    At most ``2 * actors`` videos wait on the actors and as many more are decoded ahead, so
    memory does not grow with the dataset. Stopping the iteration (Ctrl-C, an error) cancels
    the work in flight and removes the actors; a cluster started here is shut down.
    """
    options = check_ray(options)
    ray = import_ray()

    weights_dir = os.path.abspath(options.weights_dir or recognizer.store.root)
    head = recognizer.head
    if head is not None and head.path is None:
        raise OptionError("head", "the Ray engine's actors load the head from its folder: save it first")
    head_dir = None if head is None else os.path.abspath(head.path)  # each actor checks it, sha256 and all
    stream_names = tuple(s.name for s in recognizer.streams)
    started = _connect(ray, options)
    actors: list = []
    waiting = deque(items)
    preparing: dict = {}  # ref of prepared windows -> item
    prepared: deque = deque()  # (item, ref) decoded, waiting for an actor
    running: dict = {}  # ref of an actor's answer -> (item, actor index)
    try:
        cpus = ray.cluster_resources().get("CPU", 0)
        if options.address is not None:
            _check_size(options, cpus, warn=True)
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
                running[actors[index].run.remote(ref, top_k, fusion, features)] = (item, index, ref, None)
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
                    running[actors[index].run.remote(windows, top_k, fusion, features)] = (item, index, windows, since)
                    continue
                load[index] -= 1
                yield (item, *_answer(ray, ref))
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


def _answer(ray, ref) -> tuple[Result | None, Features | None, str | None, float, tuple[str, ...]]:
    """An actor's answer; a video whose task or actor kept dying past its retries is failed, in one line."""
    try:
        with keep_interrupts():
            return ray.get(ref)
    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError,
            ray.exceptions.TaskCancelledError) as err:
        first = (str(err).strip().splitlines() or [""])[0]
        return None, None, f"ray: {type(err).__name__}: {first}"[:300], 0.0, ()
