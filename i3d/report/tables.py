"""A classification as a prettytable (with a timeline for long videos) or as JSON."""

from __future__ import annotations

import json

from i3d.results import Features, Prediction, Result, WindowResult


def prediction_dict(prediction: Prediction) -> dict:
    return {"rank": prediction.rank, "index": prediction.index, "label": prediction.label,
            "probability": prediction.probability, "logit": prediction.logit}


def window_dict(window: WindowResult) -> dict:
    span = window.span
    return {"index": span.index, "start": round(span.start, 3), "end": round(span.end, 3), "frames": span.frames,
            "top": [prediction_dict(p) for p in window.top]}


def result_dict(result: Result, meta: dict, timeline: bool) -> dict:
    """The machine-readable result: ``meta`` first, then norm, all logits and probabilities, top-k, windows."""
    out = {**meta, "frames": result.frames, "seconds": result.seconds,
           "norm": result.norm,
           "logits": [float(x) for x in result.logits],
           "probabilities": [float(x) for x in result.probabilities],
           "top": [prediction_dict(p) for p in result.top]}
    if timeline:
        out["windows"] = [window_dict(w) for w in result.windows]
    return out


def classify_dict(result: Result, *, type_name: str, pretrain: str, fusion: str, precision_asked: str,
                  described: dict, head_path: str | None = None) -> dict:
    """What ``evaluate.py --format json`` prints (and ``i3d serve`` answers) for one classification:
    the run's settings, ``described`` (``{"video": name}`` or ``{"inputs": {stream: path}}``), the head's
    path and classes when one is used, then :func:`result_dict`; a timeline for videos."""
    meta = {"type": type_name, "pretrain": pretrain, "fusion": fusion, "backend": result.backend,
            "precision": {"asked": precision_asked, "used": result.precision}, "weights": result.weights,
            **described, **({"head": head_path, "classes": list(result.categories)} if head_path else {})}
    return result_dict(result, meta, timeline="video" in described)


def features_dict(features: Features, meta: dict) -> dict:
    """Per-window features (and logits, and a head's logits) by stream as lists, after ``meta``."""
    out = {**meta, "backend": features.backend, "weights": features.weights, "precision": features.precision,
           "windows": [{"index": w.index, "start": round(w.start, 3), "end": round(w.end, 3), "frames": w.frames}
                       for w in features.windows],
           "features": {stream: array.tolist() for stream, array in features.features.items()}}
    if features.logits is not None:
        out["logits"] = {stream: array.tolist() for stream, array in features.logits.items()}
    if features.head_logits is not None:
        out["head_logits"] = {stream: array.tolist() for stream, array in features.head_logits.items()}
    return out


def format_table(result: Result, timeline: bool = True) -> str:
    """Norm line plus a prettytable of rank, class, probability and logit; a timeline for several windows."""
    from prettytable import PrettyTable

    table = PrettyTable(["rank", "class", "probability", "logit"])
    table.align["class"] = "l"
    for row in result.top:
        table.add_row([row.rank, row.label, f"{row.probability:.6f}", f"{row.logit:.4f}"])
    text = f"Norm of logits: {result.norm:.6f}\n{table.get_string()}"
    if timeline and len(result.windows) > 1:
        text += "\n" + format_timeline(result.windows)
    return text


def format_timeline(windows: tuple[WindowResult, ...]) -> str:
    """One row per window: its time span and its most likely classes."""
    from prettytable import PrettyTable

    table = PrettyTable(["window", "start s", "end s", "top classes"])
    table.align["top classes"] = "l"
    for window in windows:
        tops = ", ".join(f"{row.label} ({row.probability:.2f})" for row in window.top)
        table.add_row([window.span.index, f"{window.span.start:.2f}", f"{window.span.end:.2f}", tops])
    return table.get_string()


def format_json(data: dict) -> str:
    return json.dumps(data, indent=2)
