"""The TensorFlow backend: the Keras model called through traced ``tf.function``s (graph mode)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from i3d.errors import OptionError
from i3d.weights.loading import LoadOptions
from i3d.weights.sets import WeightSet
from i3d.weights.store import WeightStore
from i3d.runtime.base import TwoHeadRunner

if TYPE_CHECKING:
    from i3d.model import Network

RUNNER_OUTPUTS = ("logits", "features", "step_logits", "step_features")
"""The outputs of the network a :class:`TensorFlowRunner` runs (see :data:`i3d.model.OUTPUTS`), in this order."""


def keras_model(ws: WeightSet, store: WeightStore, load: LoadOptions, network: Network | None = None):
    """(the set's pretrained Keras network as ``network`` describes it (default: the logits model), where its
    weights came from), made for TensorFlow to run.

    Float16 compute when ``network.mixed_precision`` (it needs a GPU).

    TF32 is off unless mixed precision is asked for: it changes logits.
    """
    from i3d.quiet import silence_tensorflow

    silence_tensorflow()
    import tensorflow as tf  # optional and slow to import: only for this backend

    from i3d.model import Network  # Keras: loaded with TensorFlow, only for this backend
    from i3d.weights.loading import pretrained_network

    network = network or Network()
    if network.mixed_precision and not tf.config.list_physical_devices("GPU"):
        raise OptionError("mixed_precision", "needs a GPU: TensorFlow has no float16 3D pooling on the CPU")
    tf.config.experimental.enable_tensor_float_32_execution(network.mixed_precision)
    return pretrained_network(ws, store, load, network)


class TensorFlowRunner(TwoHeadRunner):
    """One stream's Keras network, traced once per input shape.

    ``model`` gives :data:`RUNNER_OUTPUTS`. Threads may share the runner: it runs one call at a time,
    as a first call per input shape traces the Keras model in Python, which Keras does not make safe
    for concurrent threads (and on a GPU two calls at once would hold two sets of activations).
    """

    backend = "tensorflow"

    def __init__(self, model, source: str = "in memory", head_fingerprint: str | None = None) -> None:
        import tensorflow as tf  # optional and slow to import: only for this backend

        self.source = source
        self.precision = "fp16-mixed" if model.dtype_policy.name == "mixed_float16" else "fp32"
        self.head_fingerprint = head_fingerprint
        self.calibration_sha256 = None
        self.model = model
        self._lock = threading.Lock()
        self._forward = tf.function(lambda x: model(x, training=False)[:2], reduce_retracing=True)
        self._steps = tf.function(lambda x: model(x, training=False)[2:], reduce_retracing=True)

    @classmethod
    def load(cls, ws: WeightSet, store: WeightStore, load: LoadOptions = LoadOptions(),
             mixed_precision: bool = False) -> TensorFlowRunner:
        """The set's pretrained network, weights found by the store."""
        from i3d.model import Network  # Keras: loaded with TensorFlow, only for this backend

        return cls(*keras_model(ws, store, load, Network(outputs=RUNNER_OUTPUTS, mixed_precision=mixed_precision)))

    def outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            logits, features = self._forward(clips)
        return np.asarray(logits, dtype=np.float32), np.asarray(features, dtype=np.float32)

    def step_outputs(self, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The logits layer's per-step scores and the pooled Mixed_5c steps, before their means over time."""
        with self._lock:
            logits, pooled = self._steps(clips)
        pooled = np.asarray(pooled, dtype=np.float32)  # (N, S, 1, 1, 1024)
        return np.asarray(logits, dtype=np.float32), pooled.reshape(pooled.shape[0], pooled.shape[1], -1)
