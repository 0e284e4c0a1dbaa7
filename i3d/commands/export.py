"""``i3d export SET --format onnx|saved_model|openvino|keras|tflite|deepmind DIR``: the network for other runtimes.

    i3d export rgb_kinetics --format onnx out/             # out/model.onnx (+ model.onnx.check.json)
    i3d export rgb_kinetics --format saved_model out/      # out/saved_model/, signature serving_default
    i3d export rgb_kinetics --format openvino out/         # out/model.xml + model.bin
    i3d export rgb_kinetics --format keras out/            # out/model.keras
    i3d export rgb_kinetics --format tflite out/           # out/model.tflite + model.json (64 frames, LiteRT)
    i3d export rgb_kinetics --format tflite --precision int8 out/  # full-integer, calibrated on the sample
    i3d export rgb_kinetics --format onnx --head HEAD out/ # the head's classes on top
    i3d export rgb_kinetics --format deepmind out/         # DeepMind's checkpoint files (= i3d weights export)

Each model export is checked as it is written (the exported file in its runtime against the tool's
network on the sample); the check is printed and kept beside the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from i3d.commands.shell import (
    Parser, UsageError, folder_errors_as_usage, forbid_network, run_command, weight_store,
)

FORMATS = ("onnx", "saved_model", "openvino", "keras", "tflite", "deepmind")


def build_parser(prog: str = "i3d export") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[0].strip("`"),
                    epilog="Exit codes: 0 success, 2 usage, 3 bad input, 4 weights unavailable or corrupt, or an "
                           "export that differs from the network by more than 1e-4 on the sample (LiteRT fp16 "
                           "and int8: their own tolerance), which is then not installed in DIR.")
    parser.add_argument("set", help="weight set as `i3d weights info` names it, e.g. rgb_kinetics")
    parser.add_argument("folder", type=Path, metavar="DIR", help="where to write (made when missing)")
    parser.add_argument("--format", choices=FORMATS, required=True,
                        help="onnx (model.onnx, onnxruntime), saved_model (TensorFlow), openvino (IR), keras "
                             "(model.keras), tflite (model.tflite + model.json, LiteRT), deepmind (the weights "
                             "as DeepMind's checkpoint files)")
    parser.add_argument("--endpoint", choices=("logits", "features"), default="logits",
                        help="the output: the classes' logits (default) or the 1024-d features")
    parser.add_argument("--head", type=Path, metavar="HEAD", help="a head made by `i3d train`: its logits on top")
    parser.add_argument("--frames", type=int, metavar="N",
                        help="tflite: the clip length the file takes, fixed (default 64)")
    parser.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32",
                        help="tflite: float32 (default), float16 weights, or full-integer int8")
    parser.add_argument("--calibration", type=Path, metavar="DIR",
                        help="tflite int8: calibrate on the videos in this folder (default: the sample clip)")
    parser.add_argument("--overwrite", action="store_true", help="replace this format's files already in DIR")
    parser.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _deepmind(args: argparse.Namespace) -> int:
    """DeepMind's checkpoint files, as ``i3d weights export`` writes them."""
    from i3d.commands.weights import main as weights_main

    if args.endpoint != "logits" or args.head is not None or args.frames is not None or args.precision != "fp32" \
            or args.calibration is not None:
        raise UsageError("--format deepmind writes the weights only; --endpoint, --head, --frames, --precision "
                         "and --calibration apply to models")
    flags = [name for name, given in (("--overwrite", args.overwrite), ("--offline", args.offline),
                                      ("--debug", args.debug)) if given]
    return weights_main(["export", args.set, str(args.folder), "--format", "deepmind", *flags])


def run(args: argparse.Namespace) -> None:
    import sys

    from i3d.runtime.export import ExportOptions, export_model
    from i3d.weights.loading import LoadOptions
    from i3d.weights.sets import weight_set_by_name

    from i3d.heads import Head

    ws = weight_set_by_name(args.set)
    head = Head.load(args.head) if args.head is not None else None
    if head is not None:
        from i3d.files import refuse_output_over_input

        refuse_output_over_input({"folder": args.folder}, [args.head])
    options = ExportOptions(args.format, args.endpoint, args.overwrite, args.frames, args.precision, args.calibration)
    with folder_errors_as_usage():
        exported = export_model(ws, args.folder, options, head=head, store=weight_store(),
                                load=LoadOptions(download=not args.offline, progress=sys.stderr.isatty()))
    for path in exported.files:
        print(path)
    for entry in exported.check["runs"]:
        top = f"; top-1 {entry['top1']['export']}" if "top1" in entry else ""
        print(f"check: {entry['frames']} frames of {exported.check['sample']}: max |difference| "
              f"{entry['max_abs_difference']:.3g} from the network{top}")


def main(argv: list[str] | None = None, prog: str = "i3d export") -> int:
    from i3d.commands.weights import check_set_names

    args = build_parser(prog).parse_args(argv)
    if args.format == "deepmind":
        return run_command(lambda: _deepmind(args), args.debug)
    if args.offline:
        forbid_network()
    code = run_command(lambda: check_set_names([args.set]), args.debug)
    if code:
        return code
    from i3d.quiet import silence_tensorflow

    silence_tensorflow()
    return run_command(lambda: run(args), args.debug)
