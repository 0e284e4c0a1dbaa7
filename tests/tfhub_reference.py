"""Test-only: the reference FVD pipeline, run on the original TF-Hub I3D graph.

The TF-Hub module ``deepmind/i3d-kinetics-400/1`` is kept in ``../shared`` without
its data file, which is DeepMind's rgb_scratch data file byte for byte. Here it is
written by the exporter (``i3d weights export``) from our verified rgb/kinetics
tensors into a copy of the module, and checked against
the data file's published sha256 before anything runs on it. Then the pipeline
of google-research's ``frechet_video_distance`` runs with TensorFlow's own ops:
TF1 ``resize_bilinear``, ``2x/255 - 1``, the module's graph, and tf-gan's
Fréchet distance written out in TensorFlow ops.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from support import SHARED

MODULE_DIR = SHARED / "reference" / "tfhub_i3d_kinetics_400"
DATA_FILE = "variables.data-00000-of-00001"
DATA_SHA256 = "40cda3a73eba49c7cec1b125cf2197c122a1c4e08a50031b91889e9be252d1ac"
"""sha256 of DeepMind's rgb_scratch data file (= the module's), from ../shared/reference/README.md."""
INPUT = "input_frames:0"
OUTPUT = "RGB/inception_i3d/Mean:0"


def build_module(target: Path, store) -> Path:
    """Copy the module into ``target`` and write its data file with ``i3d weights export`` from the store."""
    from i3d.weights.checkpoint_writer import export_weights
    from i3d.weights.loading import LoadOptions

    shutil.copytree(MODULE_DIR, target)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # ../shared is read-only; the copy must take a file
    exported = export_weights("rgb_kinetics", target / "scratch", store=store, load=LoadOptions(download=False))
    if exported.data_sha256 != DATA_SHA256:
        raise AssertionError(f"exported data file has sha256 {exported.data_sha256}, not rgb_scratch's {DATA_SHA256}")
    (target / "scratch" / "model.ckpt.data-00000-of-00001").replace(target / "variables" / DATA_FILE)
    shutil.rmtree(target / "scratch")
    return target


class ReferencePipeline:
    """The reference's preprocessing, embedding and distance, each as TensorFlow computes it."""

    def __init__(self, module_dir: Path) -> None:
        import tensorflow as tf

        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            tf.compat.v1.saved_model.loader.load(self.session, [], str(module_dir))
            self.frames = tf.compat.v1.placeholder(tf.uint8, (None, None, None, 3))
            resized = tf.compat.v1.image.resize_bilinear(self.frames, (224, 224), align_corners=False,
                                                         half_pixel_centers=False)
            self.resized = resized
            self.scaled = 2.0 * tf.cast(resized, tf.float32) / 255.0 - 1
            self.a = tf.compat.v1.placeholder(tf.float64, (None, None))
            self.b = tf.compat.v1.placeholder(tf.float64, (None, None))
            self.distance_op = _tfgan_frechet(self.a, self.b)

    def variables(self) -> dict[str, np.ndarray]:
        """Every restored variable of the module by name, to check the restore read our tensors."""
        import tensorflow as tf

        with self.graph.as_default():
            found = tf.compat.v1.global_variables()
            return dict(zip((v.op.name for v in found), self.session.run(found)))

    def resize(self, frames: np.ndarray) -> np.ndarray:
        """TF1 ``resize_bilinear`` of uint8 frames (F, H, W, 3) to float32 (F, 224, 224, 3)."""
        return self.session.run(self.resized, {self.frames: frames})

    def embed(self, videos: np.ndarray, batch: int = 4) -> np.ndarray:
        """uint8 videos (N, T, H, W, 3) -> the module's (N, 400) output, as the reference computes it."""
        out = []
        for start in range(0, len(videos), batch):
            chunk = videos[start:start + batch]
            n, t = chunk.shape[:2]
            scaled = self.session.run(self.scaled, {self.frames: chunk.reshape(-1, *chunk.shape[2:])})
            out.append(self.session.run(OUTPUT, {INPUT: scaled.reshape(n, t, 224, 224, 3)}))
        return np.concatenate(out)

    def distance(self, real: np.ndarray, generated: np.ndarray) -> float:
        """tf-gan's ``frechet_classifier_distance_from_activations`` on float64 activations."""
        return float(self.session.run(self.distance_op, {self.a: real, self.b: generated}))

    def close(self) -> None:
        self.session.close()


def _tfgan_frechet(real, generated):
    """tf-gan's formula: N-1 covariances, SVD square roots (values below 1e-10 kept as they are)."""
    import tensorflow as tf

    def sqrtm(mat):
        s, u, v = tf.linalg.svd(mat)
        si = tf.where(s < 1e-10, s, tf.sqrt(s))
        return tf.matmul(tf.matmul(u, tf.linalg.diag(si)), v, transpose_b=True)

    def moments(x):
        mean = tf.reduce_mean(x, 0)
        centred = x - mean
        count = tf.cast(tf.shape(x)[0], tf.float64)
        return mean, tf.matmul(centred, centred, transpose_a=True) / (count - 1)

    m, sigma = moments(real)
    m_w, sigma_w = moments(generated)
    root = sqrtm(sigma)
    trace_sqrt = tf.linalg.trace(sqrtm(tf.matmul(root, tf.matmul(sigma_w, root))))
    return tf.linalg.trace(sigma + sigma_w) - 2.0 * trace_sqrt + tf.reduce_sum(tf.math.squared_difference(m, m_w))
