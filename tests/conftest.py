"""Fixtures the tests share: a weights store with the real rgb_kinetics import, the cricket sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import SAMPLES, build_stand_in_flow, built_once, restore_sockets, socket_functions


LONGEST_FIRST = ("test_explain.py", "test_export.py", "test_train.py", "test_litert.py", "test_serve.py",
                 "test_ray_cluster.py", "test_explain_everywhere.py", "test_precision.py", "test_fvd.py",
                 "test_video_cli.py", "test_cache_edges.py", "test_live.py", "test_segments.py", "test_tvl1.py",
                 "test_dense.py", "test_batch.py", "test_two_stream_head.py")
"""The files that take longest (summed from --durations=0), handed out first (pytest.ini keeps xdist to this
order) so that the two test processes finish together rather than one waiting on a long file started last.
test_ray.py is left at its place, far from test_ray_cluster.py: the two Ray modules take turns (a file lock),
so they should not come up at the same time. Made by tests/longest_first.py from a whole run's durations:
``.venv/bin/python -m pytest -q --durations=0 > durations.txt; .venv/bin/python tests/longest_first.py
durations.txt --write``."""


def pytest_collection_modifyitems(items) -> None:
    order = {name: rank for rank, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))  # stable: the rest keep their order


def _import_rgb_kinetics(root: Path) -> None:
    """The real rgb_kinetics import into ``root``: its Keras cache, then its OpenVINO IR."""
    from i3d.model import build_i3d
    from i3d.runtime.ir import float_model
    from i3d.weights.loading import LoadOptions, load_weights
    from i3d.weights.sets import get_weight_set
    from i3d.weights.store import WeightStore

    ws, store = get_weight_set("rgb", "kinetics"), WeightStore(root)
    load_weights(build_i3d(channels=3), ws, store, LoadOptions(download=False))
    float_model(ws, store, LoadOptions(download=False))  # converted and cached once for the run


@pytest.fixture(scope="session")
def shared_weights_dir(tmp_path_factory) -> Path:
    """A weights folder holding the real rgb_kinetics Keras cache and its OpenVINO IR, made once per run."""
    return built_once(tmp_path_factory, "weights", _import_rgb_kinetics)


@pytest.fixture(scope="session")
def shared_store(shared_weights_dir):
    from i3d.weights.store import WeightStore

    return WeightStore(shared_weights_dir)


@pytest.fixture(scope="session")
def pretrained_rgb(shared_store):
    """The rgb_kinetics Keras network with its verified weights, built once per test process; tests only read it."""
    from i3d.weights.loading import LoadOptions, build_pretrained
    from i3d.weights.sets import get_weight_set

    return build_pretrained(get_weight_set("rgb", "kinetics"), shared_store, LoadOptions(download=False))


@pytest.fixture(scope="session")
def stand_in_flow(tmp_path_factory) -> Path:
    """A store holding a flow_scratch stand-in (random weights in DeepMind's layout), its Keras cache and IR, made
    once per run: ``support.stand_in_flow_copy`` gives a test its own copy and the WeightSet pinning it."""
    return built_once(tmp_path_factory, "flow-stand-in", build_stand_in_flow)


def _write_cricket(out: Path) -> None:
    from i3d.inputs.samples import clips_from_gifs, write_clips

    write_clips(clips_from_gifs(SAMPLES), out)


@pytest.fixture(scope="session")
def cricket_clips(tmp_path_factory) -> dict[str, Path]:
    """DeepMind's cricket sample rebuilt from its GIF previews, as .npy files (made once per run)."""
    if not SAMPLES.is_dir():
        pytest.skip("../shared/samples is not beside the checkout")
    out = built_once(tmp_path_factory, "data", _write_cricket)
    return {"rgb": out / "v_CricketShot_g04_c01_rgb.npy", "flow": out / "v_CricketShot_g04_c01_flow.npy"}


@pytest.fixture(scope="session")
def recognizer(shared_store):
    """The real rgb_kinetics network, loaded once for the session."""
    from i3d.tasks.recognizer import Recognizer

    return Recognizer.load("rgb", store=shared_store)


@pytest.fixture(scope="module")
def ray_modules_take_turns(tmp_path_factory):
    """The Ray test modules (each marks itself with usefixtures) take turns across the test processes.

    Ray's ``--ray-address auto`` joins any cluster running on the machine (it looks for GCS processes), so one
    module's cluster would answer the other's "no cluster runs here" check, and a test that kills Ray workers by
    their process title would reach the other module's. A file lock in the run's shared temporary folder keeps
    them apart; the wait is the other module's run, at most.
    """
    from filelock import FileLock  # a dependency of Ray, which these modules need anyway

    with FileLock(tmp_path_factory.getbasetemp().parent / "ray-modules.lock"):
        yield


_SOCKETS = socket_functions()
"""The socket functions as the process started: saved here, since a module fixture may run an --offline command
before any test's own fixtures are made."""


@pytest.fixture(autouse=True)
def network_restored():
    """A command run in this process with --offline switches sockets off for the process: switch them back."""
    restore_sockets(_SOCKETS)
    yield
    restore_sockets(_SOCKETS)
