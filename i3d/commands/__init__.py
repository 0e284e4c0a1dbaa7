"""``i3d <command>`` (also ``python -m i3d <command>``): each command parses, calls the library, prints.

Commands: classify (what ``evaluate.py`` runs), batch, features, train, live, segments, preprocess, weights, serve, export, fvd, explain, samples.
"""

from __future__ import annotations

import sys
from importlib import import_module

COMMANDS = {
    "classify": ("i3d.commands.classify", "classify the action in a video, frames folder or .npy clips"),
    "batch": ("i3d.commands.batch", "classify every video of a dataset into a folder (resumable, shardable)"),
    "features": ("i3d.commands.features", "extract per-window I3D features of every video of a dataset"),
    "train": ("i3d.commands.train", "fit a head for your own classes on your labelled videos"),
    "live": ("i3d.commands.live", "recognise actions on a camera, a network stream or stdin as it plays"),
    "segments": ("i3d.commands.segments", "where each action starts and ends in long videos (subtitles, mAP)"),
    "preprocess": ("i3d.commands.preprocess", "write a video's model-ready arrays (and a preview) to disk"),
    "weights": ("i3d.commands.weights", "list, import and verify DeepMind's weight sets"),
    "fvd": ("i3d.commands.fvd", "Fréchet Video Distance of two sets of videos, as the reference computes it"),
    "serve": ("i3d.commands.serve", "answer classify and features requests over HTTP, with a web page"),
    "export": ("i3d.commands.export", "write a network as ONNX, a SavedModel, OpenVINO IR or a Keras file"),
    "explain": ("i3d.commands.explain", "heatmaps of where in each window the network saw its answer"),
    "samples": ("i3d.commands.samples", "prepare DeepMind's cricket sample clip in data/"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:12s}{about}" for name, (_, about) in COMMANDS.items())
    return (f"usage: i3d <command> [options]   (i3d <command> --help for its options)\n\n"
            f"I3D action recognition with DeepMind's Kinetics weights.\n\ncommands:\n{rows}\n\n"
            "Exit codes: 0 success, 1 unexpected, 2 usage, 3 bad input, 4 weights unavailable or corrupt, "
            "5 some videos of a batch failed.")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):  # asked for: help on stdout, 0; no command: usage on stderr, 2
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    return import_module(COMMANDS[name][0]).main(rest, prog=f"i3d {name}")
