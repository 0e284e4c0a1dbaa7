"""Load a weight set into the Keras network, verified, from wherever the store finds it.

Sources are tried in :meth:`~i3d.weights.store.WeightStore.locate`'s order: a
checkpoint (or TF-Hub module folder) the caller names; the Keras cache
(checked against the sha256 recorded beside it); DeepMind's files in the
store; a TF-Hub module in the hub caches; the PyPI package; and, when
allowed, a download of DeepMind's files. Every import checks the index
file's pinned sha256 (or the pickle's) and each tensor's masked crc32c, so a
truncated or corrupt file ends in :class:`~i3d.errors.WeightsError` and never
in a half-loaded model. The pinned index also says how the file lays out its
tensors (:mod:`i3d.weights.layout`). There is no fallback to random weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from i3d.errors import WeightsError
from i3d.files import sha256_file, warn_not_written
from i3d.weights.checkpoint import checkpoint_files, read_checkpoint
from i3d.weights.download import download_checkpoint, unavailable_message
from i3d.weights.pypi import read_pypi_tensors
from i3d.weights.sets import WeightSet
from i3d.weights.store import Location, WeightStore

if TYPE_CHECKING:
    from i3d.model import Network


@dataclass(frozen=True)
class LoadOptions:
    """How weights may be obtained.

    ``download``: fetch DeepMind's files when nothing local has them.
    ``progress``: show download bars on stderr (the download's own; a task's bars are in its options).
    ``checkpoint``: read this DeepMind checkpoint (``model.ckpt`` prefix or its folder) or TF-Hub
    module folder and nothing else.
    ``cache``: write the Keras cache after an import.
    """

    download: bool = True
    progress: bool = False
    checkpoint: str | os.PathLike | None = None
    cache: bool = True

    def check(self) -> None:
        """Nothing to refuse: every combination is a valid request. A checkpoint that is not there, or not
        a weight set's, is refused where it is read (WeightsError), since only then is the stream known."""


def assign_tensors(model, tensors: dict[str, np.ndarray], scope: str) -> None:
    """Set every model variable from ``tensors`` by checkpoint name; all must match exactly."""
    from i3d.model import checkpoint_key

    wanted = {checkpoint_key(v.path, scope): v for v in model.weights}
    missing = sorted(set(wanted) - set(tensors))
    extra = sorted(set(tensors) - set(wanted))
    if missing or extra:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise WeightsError(f"checkpoint does not fit the {scope} I3D model: {detail}")
    for key, variable in wanted.items():
        if tuple(tensors[key].shape) != tuple(variable.shape):
            raise WeightsError(f"checkpoint tensor {key} has shape {tensors[key].shape}, "
                               f"the model wants {tuple(variable.shape)}")
    for key, variable in wanted.items():
        variable.assign(tensors[key])


def model_tensors(model, scope: str) -> dict[str, np.ndarray]:
    """The model's variables as numpy arrays keyed by DeepMind checkpoint name."""
    from i3d.model import checkpoint_key

    return {checkpoint_key(v.path, scope): np.asarray(v.numpy()) for v in model.weights}


def ensure_available(ws: WeightSet, store: WeightStore, options: LoadOptions = LoadOptions()) -> None:
    """Make sure the set can be loaded, downloading it now if that is the only way; WeightsError if not.

    Called for every stream before any is loaded, so a run that cannot get all
    its weights stops before writing anything for the others.
    """
    if not store.locate(ws, options.checkpoint):
        _download(ws, store, options)


def _download(ws: WeightSet, store: WeightStore, options: LoadOptions) -> Location:
    """Fetch DeepMind's files into the store when downloads are allowed; WeightsError when not."""
    folder = store.checkpoint_dir(ws)
    if not options.download:
        raise WeightsError(unavailable_message(ws, folder, "no local files and downloads are off"))
    download_checkpoint(ws, folder, progress=options.progress)
    return Location("checkpoint", folder, f"downloaded to {folder}")


def published_layouts(ws: WeightSet) -> dict:
    """{pinned index sha256: the layout of the files it indexes} for every published checkpoint of ``ws``."""
    layouts = {ws.index_sha256: ws.layout}
    if ws.hub is not None:
        layouts[ws.hub.index_sha256] = ws.hub.layout
    return layouts


def read_published_checkpoint(ws: WeightSet, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The set's tensors under the model's names from one of its published checkpoints, verified.

    ``path`` is DeepMind's checkpoint (prefix or folder) or a TF-Hub module folder;
    its index must be one pinned for ``ws`` and every tensor must pass its crc32c.
    """
    index_path, _ = checkpoint_files(path)
    try:
        digest = sha256_file(index_path)
    except OSError as err:
        raise WeightsError(f"{index_path}: cannot read the index ({err.strerror or err})") from None
    layout = published_layouts(ws).get(digest)
    if layout is None:
        which = "DeepMind's published index" + (f" and the TF-Hub module {ws.hub.handle}'s" if ws.hub else "")
        raise WeightsError(f"{index_path}: sha256 differs from {which} for {ws.name}; "
                           "replace it with the official file")
    return layout.to_model(read_checkpoint(path, digest), ws.stream.scope)


def _read_tensors(ws: WeightSet, location: Location) -> dict[str, np.ndarray]:
    if location.kind == "pypi":
        return read_pypi_tensors(ws.pypi, location.path, ws.stream.scope)
    return read_published_checkpoint(ws, location.path)


def load_weights(model, ws: WeightSet, store: WeightStore, options: LoadOptions = LoadOptions()) -> str:
    """Fill ``model`` with the set's weights; returns where they came from.

    The first import writes the Keras cache (unless ``options.cache`` is off);
    later calls load it after checking its recorded sha256. A cache that does
    not verify is passed over and rebuilt from the next source.
    """
    locations = store.locate(ws, options.checkpoint)
    if locations and locations[0].kind == "cache" and store.cached_sha256(ws) is not None:
        try:
            model.load_weights(locations[0].path)
            return locations[0].description
        except Exception:  # an unreadable cache is rebuilt from the next source
            pass
    sources = [loc for loc in locations if loc.kind != "cache"]
    location = sources[0] if sources else _download(ws, store, options)
    assign_tensors(model, _read_tensors(ws, location), ws.stream.scope)
    if options.cache:
        try:
            store.write_keras_cache(model, ws, location.description)
        except Exception as err:  # best effort: the weights in memory are verified; Ctrl-C still stops the run
            warn_not_written(f"weight cache {store.keras_cache(ws)}", err)
    return location.description


def pretrained_network(ws: WeightSet, store: WeightStore, options: LoadOptions = LoadOptions(),
                       network: Network | None = None, **build) -> tuple[object, str]:
    """(the Keras network ``network`` describes, built for ``ws`` with its weights loaded, where they came from).

    ``network`` is an :class:`i3d.model.Network` (default: the logits model); its channels and classes are
    the set's. The set's weights load into the whole network :func:`i3d.model.build_network` builds, and
    the model it returns shares them. ``build`` goes to :func:`~i3d.model.build_network` as it is.
    """
    from i3d.model import Network, build_network  # Keras, and so TensorFlow: loaded when a network is built

    network = replace(network or Network(), channels=ws.stream.channels, num_classes=ws.num_classes)
    if network.name is None:
        network = replace(network, name=ws.name)
    found: list[str] = []
    model = build_network(network, weights=lambda whole: found.append(load_weights(whole, ws, store, options)),
                          **build)
    return model, found[0]


def build_pretrained(ws: WeightSet, store: WeightStore, options: LoadOptions = LoadOptions(),
                     frames: int | None = None):
    """Build the Keras I3D logits model for ``ws`` and load its weights."""
    from i3d.model import Network  # Keras, and so TensorFlow: loaded when a network is built

    return pretrained_network(ws, store, options, Network(frames=frames))[0]
