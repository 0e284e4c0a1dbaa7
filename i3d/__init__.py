"""I3D action recognition (Carreira & Zisserman 2017) in Keras 3, with DeepMind's weights.

::

    import i3d
    result = i3d.classify("my.mp4")
    print(result.label, result.top[0].probability)
    print(i3d.fvd("real_videos/", "samples.npy").distance)   # Fréchet Video Distance, as the reference computes it

Importing ``i3d`` is cheap: TensorFlow, OpenVINO and OpenCV load when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__all__ = ["EngineOptions", "FVDOptions", "FVDResult", "Features", "Head", "I3DError", "InputError", "LoadOptions",
           "OptionError", "Prediction", "Recognizer", "Result", "VideoOptions", "VideoStats", "WeightSet",
           "WeightStore", "WeightsError", "classify", "extract_features", "fvd", "fvd_embeddings", "fvd_stats",
           "load_stats", "FineTuneOptions", "TrainOptions", "train", "ExportOptions", "export_model", "live",
           "LiveOptions", "LiveResult", "LiveSummary", "explain", "Explanation", "ExplainOptions", "AnalysisOptions"]

_HOMES = {
    "EngineOptions": "i3d.runtime.base",
    "FVDOptions": "i3d.tasks.fvd.measure",
    "FVDResult": "i3d.tasks.fvd.measure",
    "AnalysisOptions": "i3d.tasks.fvd.analysis",
    "Features": "i3d.results",
    "Head": "i3d.heads",
    "I3DError": "i3d.errors",
    "InputError": "i3d.errors",
    "LoadOptions": "i3d.weights.loading",
    "OptionError": "i3d.errors",
    "Prediction": "i3d.results",
    "Recognizer": "i3d.tasks.recognizer",
    "Result": "i3d.results",
    "VideoOptions": "i3d.preprocess.windows",
    "VideoStats": "i3d.tasks.fvd.stats",
    "WeightSet": "i3d.weights.sets",
    "WeightStore": "i3d.weights.store",
    "WeightsError": "i3d.errors",
    "classify": "i3d.tasks.recognizer",
    "extract_features": "i3d.tasks.recognizer",
    "fvd": "i3d.tasks.fvd.measure",
    "fvd_embeddings": "i3d.tasks.fvd.measure",
    "fvd_stats": "i3d.tasks.fvd.measure",
    "load_stats": "i3d.tasks.fvd.stats",
    "FineTuneOptions": "i3d.tasks.training.options",
    "TrainOptions": "i3d.tasks.training.options",
    "train": "i3d.tasks.training.train",
    "live": "i3d.tasks.live",
    "LiveOptions": "i3d.inputs.live",
    "LiveResult": "i3d.tasks.live",
    "LiveSummary": "i3d.tasks.live",
    "ExportOptions": "i3d.runtime.export",
    "export_model": "i3d.runtime.export",
    "explain": "i3d.tasks.explain.run",
    "Explanation": "i3d.tasks.explain.run",
    "ExplainOptions": "i3d.tasks.explain.options",
}

if TYPE_CHECKING:
    from i3d.errors import I3DError, InputError, OptionError, WeightsError
    from i3d.heads import Head
    from i3d.tasks.training.options import FineTuneOptions, TrainOptions
    from i3d.tasks.training.train import train
    from i3d.inputs.live import LiveOptions
    from i3d.tasks.live import LiveResult, LiveSummary, live
    from i3d.tasks.explain.options import ExplainOptions
    from i3d.tasks.explain.run import Explanation, explain
    from i3d.runtime.export import ExportOptions, export_model
    from i3d.preprocess.windows import VideoOptions
    from i3d.runtime.base import EngineOptions
    from i3d.tasks.fvd.analysis import AnalysisOptions
    from i3d.tasks.fvd.measure import FVDOptions, FVDResult, fvd, fvd_embeddings, fvd_stats
    from i3d.tasks.fvd.stats import VideoStats, load_stats
    from i3d.tasks.recognizer import Recognizer, classify, extract_features
    from i3d.results import Features, Prediction, Result
    from i3d.weights.loading import LoadOptions
    from i3d.weights.sets import WeightSet
    from i3d.weights.store import WeightStore


def __getattr__(name: str):
    """Import the public names on first use, so ``import i3d`` stays light."""
    if name not in _HOMES:
        raise AttributeError(f"module 'i3d' has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name]), name)
    globals()[name] = value
    return value
