"""The Ray cluster a dataset run goes to: its sizes (:class:`RayOptions`), the checks that refuse a cluster no
run could use, and joining or starting it. Ray is imported only here and only when a run asks for it
(``pip install -e ".[ray]"``)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass

from i3d.errors import OptionError
from i3d.files import reason
from i3d.processes import available_cores


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

    def check(self) -> None:
        """Refuse sizes no cluster could use (OptionError)."""
        if not 1 <= self.actors <= 1024:
            raise OptionError("ray_actors", f"must be between 1 and 1024, not {self.actors}")
        if not 0.01 <= self.actor_cpus <= 256:  # Ray counts CPUs in steps of 0.0001; a hundredth is a floor
            raise OptionError("ray_actor_cpus", f"must be between 0.01 and 256, not {self.actor_cpus}")
        if not 0.01 <= self.task_cpus <= 256:
            raise OptionError("ray_task_cpus", f"must be between 0.01 and 256, not {self.task_cpus}")
        if not 0.1 <= self.connect_timeout <= 3600:
            raise OptionError("ray_connect_timeout",
                              f"must be between 0.1 and 3600 seconds, not {self.connect_timeout}")
        if self.cpus is not None and self.cpus < 1:
            raise OptionError("ray_cpus", f"must be at least 1, not {self.cpus}")


def check_ray(options: RayOptions) -> None:
    """Ray importable, sizes sane, and the cluster big enough for the actors and one decoding task (OptionError).

    A function, not part of :meth:`RayOptions.check`: it asks the machine (is Ray installed, how many CPUs)
    as well as the options.

    The size is known for a local cluster and for one this process is connected to; a cluster
    joined by address is checked once joined (a warning: an autoscaler may still add nodes).
    """
    ray = import_ray()
    options.check()
    if ray.is_initialized():
        check_size(options, ray.cluster_resources().get("CPU", 0))
    elif options.address is None:
        check_size(options, options.cpus or available_cores())


def check_size(options: RayOptions, cpus: float, warn: bool = False) -> None:
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


def _probe(address: str, timeout: float) -> None:
    """Refuse, within ``timeout`` seconds, a cluster address nothing answers on (Ray itself retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise OptionError("ray_address", f"is {address!r}; give auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise OptionError("ray_address", f"{address}: no Ray cluster answers there within {timeout:g} s "
                                         f"({reason(err)}); check the address, or start the cluster with "
                                         "'ray start --head'") from None


def connect(ray, options: RayOptions) -> bool:
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
