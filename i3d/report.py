"""Turn logits into probabilities, top-k rankings, a table and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax (shifted by the maximum; float64 inside)."""
    shifted = np.asarray(logits, dtype=np.float64) - np.max(logits)
    exp = np.exp(shifted)
    return exp / exp.sum()


def fuse_logits(stream_logits: Sequence[np.ndarray], fusion: str = "mean") -> np.ndarray:
    """Combine per-stream logits: 'mean' averages them, 'sum' adds them (DeepMind's sample output)."""
    stacked = np.stack([np.asarray(x, dtype=np.float64) for x in stream_logits])
    if fusion == "mean":
        return stacked.mean(axis=0)
    if fusion == "sum":
        return stacked.sum(axis=0)
    raise ValueError(f"unknown fusion {fusion!r}; use 'mean' or 'sum'")


def top_k(logits: np.ndarray, labels: Sequence[str], k: int) -> list[dict]:
    """The k most likely classes as dicts of rank, index, label, probability and logit."""
    probabilities = softmax(logits)
    order = np.argsort(-np.asarray(logits), kind="stable")[:k]
    return [{"rank": rank, "index": int(i), "label": labels[i],
             "probability": float(probabilities[i]), "logit": float(logits[i])}
            for rank, i in enumerate(order, start=1)]


def result_dict(logits: np.ndarray, labels: Sequence[str], k: int, **meta) -> dict:
    """The full machine-readable result: metadata, norm, all logits and probabilities, top-k."""
    logits = np.asarray(logits, dtype=np.float64)
    return {**meta,
            "norm": float(np.linalg.norm(logits)),
            "logits": [float(x) for x in logits],
            "probabilities": [float(x) for x in softmax(logits)],
            "top": top_k(logits, labels, k)}


def format_table(result: dict) -> str:
    """Norm line plus a prettytable of rank, class, probability and logit."""
    from prettytable import PrettyTable

    table = PrettyTable(["rank", "class", "probability", "logit"])
    table.align["class"] = "l"
    for row in result["top"]:
        table.add_row([row["rank"], row["label"], f"{row['probability']:.6f}", f"{row['logit']:.4f}"])
    text = f"Norm of logits: {result['norm']:.6f}\n{table.get_string()}"
    if len(result.get("windows", ())) > 1:
        text += "\n" + format_timeline(result["windows"])
    return text


def format_timeline(windows: list[dict]) -> str:
    """One row per window: its time span and its most likely classes."""
    from prettytable import PrettyTable

    table = PrettyTable(["window", "start s", "end s", "top classes"])
    table.align["top classes"] = "l"
    for window in windows:
        tops = ", ".join(f"{row['label']} ({row['probability']:.2f})" for row in window["top"])
        table.add_row([window["index"], f"{window['start']:.2f}", f"{window['end']:.2f}", tops])
    return table.get_string()


def format_json(result: dict) -> str:
    return json.dumps(result, indent=2)
