"""``i3d fvd``'s protocol flags: ``--protocol``, ``--range``, and ``--frames`` with prefixes (``16,32,64``).

Parsing and printing only; the presets are :mod:`i3d.tasks.fvd.protocols`.
"""

from __future__ import annotations

import argparse

PROTOCOL_NAMES = ("tfhub", "styleganv", "videogpt", "cdfvd")  # i3d.tasks.fvd.protocols.PROTOCOLS, not imported here
RANGE_NAMES = ("0,1", "-1,1", "0,255")


def frame_lengths(text: str) -> tuple[int, ...]:
    """``16`` or ``16,32,64`` -> the clip lengths, ascending, each once (argparse type)."""
    try:
        lengths = tuple(sorted({int(part) for part in text.split(",")}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames or a list like 16,32,64") from None
    return lengths


class RangeAction(argparse.Action):
    """``--range``'s value, one of RANGE_NAMES. argparse reads ``-1,1`` after a space as a flag and leaves
    ``--range`` without a value (optional here, so this action, not argparse's "expected one argument",
    says how to write it)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        if values is None:
            raise argparse.ArgumentError(self, "needs LOW,HIGH: 0,1, 0,255, or -1,1 written with '=' as "
                                               "--range=-1,1 (after a space, -1,1 reads as a flag)")
        if values not in RANGE_NAMES:
            raise argparse.ArgumentError(self, f"invalid choice: {values!r} (choose from 0,1, -1,1 written "
                                               "--range=-1,1, or 0,255)")
        setattr(namespace, self.dest, values)


def add_protocol_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=PROTOCOL_NAMES, default="tfhub",
                        help="whose choices of resize, clips, value range, video counts and covariance: tfhub (the "
                             "reference, default), styleganv, videogpt, cdfvd (see the README's FVD protocols)")
    parser.add_argument("--range", dest="value_range", action=RangeAction, nargs="?", metavar="LOW,HIGH",
                        help="the value range of float videos (0,1, -1,1 or 0,255; write --range=-1,1); float "
                             "videos are refused without it, and converted to uint8 by the protocol's rule")


def protocol_options(args: argparse.Namespace) -> dict:
    """FVDOptions' protocol fields from the flags (``--frames``: the longest is the clip, the rest prefixes)."""
    lengths = args.frames if isinstance(args.frames, tuple) else (args.frames,)
    return {"frames": lengths[-1], "prefixes": lengths[:-1], "protocol": args.protocol,
            "value_range": args.value_range}


def protocol_json(result) -> dict:
    """The protocol's every choice and the prefixes' FVD, for ``--format json``."""
    return {"protocol": result.protocol, "prefixes": {str(length): value for length, value in result.prefixes.items()}}


def protocol_lines(result) -> list[str]:
    """One line per prefix, then the protocol's name when it is not the reference."""
    lines = [f"FVD-{length}: {value:.4f} (the same clips' first {length} frames)"
             for length, value in sorted(result.prefixes.items())]
    if result.protocol.get("name", "tfhub") != "tfhub":
        choices = result.protocol
        lines.append(f"  protocol {choices['name']}: {choices['resize']}, range {choices['range']}, real clips "
                     f"{choices['real_clips']}, generated clips {choices['generated_clips']}, covariance "
                     f"{choices['covariance']}, seed {choices['seed']}")
    return lines
