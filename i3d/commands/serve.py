"""``i3d serve``: the HTTP API and its web page, the models loaded once (FastAPI on uvicorn).

    i3d serve                                  # http://127.0.0.1:8000/ : drop a video on the page
    i3d serve --type both --precision int8 --concurrency 2 --token-file ~/.i3d-token
    curl -F video=@clip.mp4 http://127.0.0.1:8000/v1/classify

SIGTERM stops accepting, lets the requests the network is running finish, cuts those still uploading or
waiting --read-timeout + 5 s later (503, their uploads removed; with --drain-timeout S every request still
open S seconds later), and exits 0; Ctrl-C the same with 130. Flags are checked before the
network's libraries load, so a usage error is told at once.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from i3d.commands.flags import (
    TYPES, add_engine_arguments, add_fusion_argument, add_pretrain_argument, check_pretrain_type, engine_options,
)
from i3d.commands.shell import Parser, UsageError, forbid_network, run_command, weight_store

if TYPE_CHECKING:
    from i3d.serve.options import ServeOptions


def build_parser(prog: str = "i3d serve") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description="Answer classify and features requests over HTTP, with a web page.",
                    epilog="Exit codes: 0 stopped by SIGTERM, 2 usage (a port in use too), 4 weights unavailable, "
                           "130 Ctrl-C.")
    parser.add_argument("--type", choices=tuple(TYPES), default="rgb", help="stream(s) to load (default: rgb)")
    add_pretrain_argument(parser)
    parser.add_argument("--head", type=Path, metavar="HEAD", help="a head made by `i3d train`: answer over its classes")
    add_fusion_argument(parser, help="how two streams' logits are combined unless a request says (default: mean)")
    add_engine_arguments(parser)
    net = parser.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    net.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any free port, printed)")
    net.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on the API (401 otherwise); "
                                     "every local user sees it in ps: prefer --token-file or $I3D_SERVE_TOKEN")
    net.add_argument("--token-file", type=Path, metavar="PATH",
                     help="the token from the first line of PATH (one of --token, --token-file, $I3D_SERVE_TOKEN)")
    net.add_argument("--allowed-hosts", nargs="+", default=[], metavar="NAME",
                     help="Host names answered beyond the bound address (and localhost, 127.0.0.1, [::1] when "
                          "bound to loopback): NAME, NAME:PORT, or * for any; other Hosts get 400")
    net.add_argument("--max-upload-mb", type=float, default=512.0, metavar="MB",
                     help="largest upload (default 512; 413 beyond)")
    net.add_argument("--max-seconds", type=float, default=600.0, metavar="S",
                     help="most seconds of video per request (default 600; 413 beyond)")
    net.add_argument("--concurrency", type=int, default=2, metavar="N",
                     help="requests decoding and running at once (default 2; the network itself runs one "
                          "window batch at a time)")
    net.add_argument("--queue", type=int, default=64, metavar="N",
                     help="requests that may wait beyond those (default 64; then 503 with Retry-After)")
    net.add_argument("--allow-dir", type=Path, metavar="DIR",
                     help="let JSON requests name files under DIR ({\"path\": ...}); off by default")
    net.add_argument("--temp-dir", type=Path, metavar="DIR",
                     help="where uploads are kept while used (default: the system's temporary folder)")
    net.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                     help="a request's headers must all arrive within S seconds of the connection opening (or "
                          "of the previous answer), else the connection is closed (408; default 10)")
    net.add_argument("--read-timeout", type=float, default=20.0, metavar="S",
                     help="longest pause in a request's body (default 20): a stalled upload gets 408 and frees "
                          "its slot")
    net.add_argument("--drain-timeout", type=float, metavar="S",
                     help="on SIGTERM, seconds the requests in flight get to finish before they are cut (503, "
                          "uploads removed); default: requests the network is running finish, the others "
                          "(uploading, waiting) are cut --read-timeout + 5 s after SIGTERM")
    parser.add_argument("--no-flow-cache", action="store_true", help="neither read nor write the flow cache")
    parser.add_argument("--offline", action="store_true", help="no network at all: never download weights")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, made before the server starts so that a port in use is one line, and port 0 is told."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as err:
        raise UsageError(f"--host {host} --port {port}: cannot listen there ({err.strerror or err}); "
                         "choose another port") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve_options(args: argparse.Namespace) -> ServeOptions:
    """The server's ServeOptions from the flags, every flag checked: nothing heavy is imported here, so a
    usage error is told before TensorFlow loads."""
    from i3d.serve.options import ServeOptions, read_token

    token = read_token(args.token, args.token_file)
    check_pretrain_type(args.pretrain, args.type)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, not {args.port}")
    options = ServeOptions(token=token, max_upload_mb=args.max_upload_mb, max_seconds=args.max_seconds,
                           concurrency=args.concurrency, queue=args.queue, allow_dir=args.allow_dir,
                           temp_dir=args.temp_dir, allowed_hosts=tuple(args.allowed_hosts),
                           header_timeout=args.header_timeout, read_timeout=args.read_timeout,
                           drain_timeout=args.drain_timeout)
    options.check()
    return options


def run(args: argparse.Namespace) -> int:
    options = serve_options(args)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UsageError(f"i3d serve needs the serve extra ({err.name} is missing): pip install -e '.[serve]'") from None
    from i3d.quiet import quiet_opencv, silence_tensorflow

    quiet_opencv()
    silence_tensorflow()
    from i3d.caches import default_cache_dir
    from i3d.heads import Head
    from i3d.serve.app import Server
    from i3d.serve.guard import HostPolicy
    from i3d.serve.options import ServedModel
    from i3d.serve.running import serve
    from i3d.tasks.recognizer import Recognizer
    from i3d.weights.loading import LoadOptions

    if args.offline:
        forbid_network()
    head = Head.load(args.head) if args.head is not None else None
    recognizer = Recognizer.load(TYPES[args.type], args.pretrain, load=LoadOptions(download=not args.offline),
                                 engine=engine_options(args), store=weight_store(), head=head)
    model = ServedModel(type_name=args.type, pretrain=args.pretrain, fusion=args.fusion,
                        head_path=str(args.head) if head is not None else None,
                        flow_cache=None if args.no_flow_cache else default_cache_dir() / "flow")
    server = Server(recognizer, model, options)
    try:
        sock = _bind(args.host, args.port)
    except UsageError:
        shutil.rmtree(server.temp_dir, ignore_errors=True)  # the uploads folder was made for this server only
        raise
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving http://{shown}:{port}/ ({'+'.join(TYPES[args.type])}, {recognizer.backend} "
          f"{'/'.join(recognizer.precision.values())}; uploads in {server.temp_dir})", file=sys.stderr, flush=True)
    try:
        cut = serve(server, sock, HostPolicy.listening_as((args.host, host), port, options.allowed_hosts))
    finally:
        sock.close()
        shutil.rmtree(server.temp_dir, ignore_errors=True)
    if cut:
        print(f"stopped: {cut} request(s) not done {options.drain_seconds:g} s after SIGTERM were cut "
              "(503; --drain-timeout) and their uploads removed", file=sys.stderr)
    else:
        print("stopped: every request in flight was answered", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None, prog: str = "i3d serve") -> int:
    args = build_parser(prog).parse_args(argv)
    return run_command(lambda: run(args), args.debug)
