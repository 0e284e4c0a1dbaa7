"""The HTTP API and its page: a FastAPI app around one loaded :class:`~i3d.tasks.recognizer.Recognizer`.

    POST /v1/classify   a video (multipart field ``video``, or JSON {"path": ...} under --allow-dir) and
                        the classify options as fields; answers what ``evaluate.py --format json`` prints
    POST /v1/features   the same inputs; each window's 1024-d features and the settings that made them
    POST /v1/explain    the same inputs; per window the Grad-CAM heat of its top class (``top_k`` classes when
                        sent) at Mixed_5c, as explain.json plus the maps (see :func:`explanation_json`)
    GET  /v1/info       streams, weight sets and their sha256, classes, precision, versions, limits
    GET  /healthz       liveness;  GET /metrics  Prometheus' text format;  GET /  the web page

Errors are JSON ``{"error": "...", "kind": "..."}``; ``kind`` is the exit code's class on the command line
(usage, input, weights, unexpected) or one of the server's own (auth, forbidden, busy, host, timeout). A Host the
server does not answer as gets 400, a POST from another site's page 403 (see :mod:`i3d.serve.guard`).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.requests import ClientDisconnect

from i3d.errors import I3DError, InputError, OptionError, WeightsError
from i3d.serve.guard import Guard, HostPolicy, token_matches
from i3d.serve.options import ServedModel, ServeOptions
from i3d.serve.paths import AllowedFile, PathRefused
from i3d.serve.timeouts import BodyTimedOut, BodyTimeout
from i3d.serve.uploads import BadUpload, NotVideo, UploadTooLarge, receive_upload
from i3d.tasks.recognizer import Recognizer

OPTION_FIELDS = {"top_k": int, "fusion": str, "window": int, "stride": int, "crop": str, "start": float,
                 "end": float, "max_frames": int, "strict": bool}
"""The classify options a request may set, by their command-line names (dashes as underscores)."""
MAX_JSON_BYTES = 65536
FORM_OVERHEAD = 1 << 20
"""A multipart body may exceed --max-upload-mb by this much (boundaries, headers, option fields)."""


class ApiError(Exception):
    """An answer other than 200: the HTTP status, the one-line message, its kind, extra headers."""

    def __init__(self, status: int, message: str, kind: str, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, headers or {}


def error_status(err: Exception) -> tuple[int, str]:
    """The HTTP status and kind of a library error (the kinds are the command line's exit-code classes)."""
    for kind, status, name in ((BodyTimedOut, 408, "timeout"), (UploadTooLarge, 413, "input"),
                               (NotVideo, 415, "input"), (BadUpload, 400, "usage"),
                               (OptionError, 400, "usage"), (InputError, 422, "input"), (WeightsError, 500, "weights"),
                               (I3DError, 400, "usage")):
        if isinstance(err, kind):
            return status, name
    return 500, "unexpected"


@dataclass
class _Admission:
    """Requests admitted (uploading, waiting or running) and running; beyond concurrency + queue: 503."""

    options: ServeOptions
    admitted: int = 0
    running: int = 0
    slots: asyncio.Semaphore = field(default=None)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.options.concurrency)

    def enter(self) -> None:
        if self.admitted >= self.options.concurrency + self.options.queue:
            raise ApiError(503, f"busy: {self.admitted} requests running or waiting (--concurrency "
                                f"{self.options.concurrency}, --queue {self.options.queue}); retry later",
                           "busy", {"Retry-After": str(self.options.retry_after)})
        self.admitted += 1


def parse_options(fields: dict, model: ServedModel, classes: int):
    """(VideoOptions, top_k, fusion) from a request's option fields, as the command line would make them."""
    from i3d.preprocess.windows import VideoOptions

    values = {}
    for name, text in fields.items():
        if name not in OPTION_FIELDS:
            raise OptionError(name, f"is not an option of this API; choose from {', '.join(OPTION_FIELDS)}")
        kind = OPTION_FIELDS[name]
        text = str(text).strip()
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(text)
                values[name] = text.lower() in ("true", "1")
            else:
                values[name] = kind(text)
        except ValueError:
            raise OptionError(name, f"is {text!r}, not a{'n integer' if kind is int else ' ' + kind.__name__}") from None
    top_k = values.pop("top_k", min(20, classes) if model.head_path else 20)
    fusion = values.pop("fusion", model.fusion)
    video = VideoOptions(**values, flow_cache=model.flow_cache)
    return video, top_k, fusion


def open_allowed(given: str, root: Path | None) -> AllowedFile:
    """The file a JSON request names, opened, when it lies under ``root`` (the resolved --allow-dir) once
    links and ``..`` are followed; the request reads that open file (see :mod:`i3d.serve.paths`)."""
    if root is None:
        raise ApiError(403, "paths are not served: start the server with --allow-dir DIR, or upload the video",
                       "forbidden")
    try:
        return AllowedFile(given, root)
    except PathRefused as err:
        raise ApiError(err.status, str(err), "forbidden" if err.status == 403 else "input") from None


class Server:
    """The app's state: the recognizer, its options, the admission counters and the metrics.

    The recognizer is used as it was given, shared by the request threads: its runners make their
    own calls safe for that (see :class:`i3d.runtime.base.Runner`).
    """

    def __init__(self, recognizer: Recognizer, model: ServedModel, options: ServeOptions) -> None:
        from i3d.serve.metrics import Metrics

        options.check()
        self.recognizer, self.model, self.options = recognizer, model, options
        self.temp_dir = options.temp_folder()
        self.allow_root = options.allow_dir.resolve() if options.allow_dir is not None else None
        self.metrics = Metrics()
        self.admission = _Admission(self.options)
        self.pending: set[asyncio.Task] = set()  # requests admitted and not yet running: cut first by a drain
        from i3d.tasks.explain.gradcam import SharedNetworks  # the explain package: only what a server needs

        self.explain_networks = SharedNetworks()  # one Grad-CAM network per process, not one per request

    def cut_pending(self) -> None:
        """Cut the requests still uploading or waiting for a slot: each answers 503 (see :mod:`i3d.serve.running`)."""
        for task in list(self.pending):
            task.cancel()

    def info(self) -> dict:
        from i3d.tasks.batch.folder import tool_version

        recognizer = self.recognizer
        return {"type": self.model.type_name, "pretrain": self.model.pretrain, "fusion": self.model.fusion,
                "streams": [stream.name for stream in recognizer.streams], "backend": recognizer.backend,
                "precision": recognizer.precision_record(),
                "weights": {name: {"set": ws.name, "checkpoint": ws.deepmind_name, "index_sha256": ws.index_sha256}
                            for name, ws in recognizer.weight_sets.items()},
                "head": ({"path": self.model.head_path, "sha256": recognizer.head.fingerprint()}
                         if recognizer.head is not None else None),
                "classes": list(recognizer.categories),
                "limits": {"max_upload_mb": self.options.max_upload_mb, "max_seconds": self.options.max_seconds,
                           "concurrency": self.options.concurrency, "queue": self.options.queue,
                           "token_required": self.options.token is not None,
                           "paths_served": self.options.allow_dir is not None},
                "versions": {"i3d": tool_version(), **_library_versions()}}

    def authorise(self, header: str | None) -> None:
        """401 unless ``header`` (as Starlette gives it: its bytes read as Latin-1) is the bearer token."""
        if self.options.token is None:
            return
        if not token_matches(header.encode("latin-1") if header is not None else None, self.options.token):
            raise ApiError(401, "a bearer token is required: send 'Authorization: Bearer <token>' (the server's "
                                "--token)", "auth", {"WWW-Authenticate": "Bearer"})

    def check_duration(self, path: Path, video, name: str) -> None:
        from i3d.inputs.video import video_duration

        try:
            seconds = video_duration(path)
        except InputError:
            raise NotVideo(f"{name}: not a video this tool can decode") from None
        if seconds is None:
            raise NotVideo(f"{name}: its length cannot be told from the container; re-encode it (e.g. to mp4)")
        used = min(seconds, video.end if video.end is not None else seconds) - (video.start or 0.0)
        if used > self.options.max_seconds:
            raise UploadTooLarge(f"{name}: {used:.1f} s of video, over the server's --max-seconds "
                                 f"{self.options.max_seconds:g}; send a shorter clip or set start/end")

    def check_frames(self, path: Path, video, name: str) -> None:
        """413 when more frames decode than --max-seconds allows, whatever the container's header claims.

        :meth:`check_duration` trusts the header, which a forged file can shorten: here the frames of the
        requested range are counted at the request's frame rate, decoding stops one past the limit.
        """
        from i3d.inputs.video import iter_video

        limit = math.ceil(self.options.max_seconds * video.fps - 1e-9)
        cap = limit + 1 if video.max_frames is None else min(video.max_frames, limit + 1)
        frames = iter_video(path, fps=video.fps, start=video.start, end=video.end, max_frames=cap,
                            prepare=_unchanged)
        decoded = sum(1 for _ in frames)
        if decoded > limit:
            raise UploadTooLarge(f"{name}: over {limit} frames at {video.fps:g} fps decode (more than its container "
                                 f"claims), over the server's --max-seconds {self.options.max_seconds:g}; send a "
                                 "shorter clip or set start/end")

    def work(self, endpoint: str, path: Path, name: str, video, top_k: int, fusion: str) -> dict:
        """The network's part of a request (runs in a worker thread), once its frames are counted."""
        from i3d.report.tables import classify_dict, features_dict

        self.check_frames(path, video, name)
        if endpoint == "classify":
            result = self.recognizer.classify(path, video=video, top_k=top_k, fusion=fusion)
            return classify_dict(result, type_name=self.model.type_name, pretrain=self.model.pretrain,
                                 fusion=fusion, precision_asked=self.recognizer.engine.precision,
                                 described={"video": name}, head_path=self.model.head_path)
        if endpoint == "explain":
            from i3d.tasks.explain import ExplainOptions, explain
            from i3d.tasks.explain.heat_track import explanation_json
            from i3d.weights.loading import LoadOptions

            explanation = explain(self.recognizer, path, ExplainOptions(top=top_k), video=video, fusion=fusion,
                                  load=LoadOptions(download=False), networks=self.explain_networks,
                                  pictures=False)
            return {"video": name, **explanation_json(explanation)}
        features = self.recognizer.features(path, video=video, logits=True)
        return features_dict(features, {"video": name, "settings": video.numbers()})


def _unchanged(frame):
    """The decoded frame as it is: frames are only counted (see :meth:`Server.check_frames`)."""
    return frame


def _library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("tensorflow", "keras", "openvino", "numpy", "fastapi", "uvicorn"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def create_app(server: Server, hosts: HostPolicy | None = None):
    """The FastAPI app answering for ``server``, as the names in ``hosts`` (default: loopback's, any port)."""
    app = FastAPI(title="i3d", summary="What is happening in this video? DeepMind's I3D over HTTP.",
                  docs_url=None, redoc_url=None)  # their pages load scripts from a CDN: none here
    hosts = hosts or HostPolicy.listening_as(("127.0.0.1",), None, server.options.allowed_hosts)
    app.add_middleware(BodyTimeout, seconds=server.options.read_timeout,
                       on_timeout=server.metrics.timeouts.labels("body").inc)
    app.add_middleware(Guard, policy=hosts, token=server.options.token)
    page = resources.files("i3d.serve").joinpath("page.html").read_text(encoding="utf-8")

    def failure(err: ApiError) -> JSONResponse:
        return JSONResponse({"error": str(err), "kind": err.kind}, status_code=err.status, headers=err.headers)

    async def source_of(request: Request, endpoint: str):
        """(path, name, fields, release) of a request: an upload streamed to a file, or an allowed path held
        open; ``release()`` removes the one or closes the other."""
        kind = request.headers.get("content-type", "")
        if kind.split(";")[0].strip().lower() == "application/json":
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_JSON_BYTES:
                    raise BadUpload(f"the JSON body is over {MAX_JSON_BYTES} bytes")
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):  # nesting too deep for the parser is not JSON we take either
                raise BadUpload("the body is not JSON; send {\"path\": ...} or a multipart form") from None
            if not isinstance(data, dict) or not isinstance(data.get("path"), str):
                raise BadUpload("the JSON body needs \"path\": a file under the served folder")
            given = data.pop("path")
            opened = open_allowed(given, server.allow_root)
            return opened.path, given, data, opened.close
        length = request.headers.get("content-length")
        limit = int(server.options.max_upload_mb * 2**20)
        if length is not None and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
            raise UploadTooLarge(f"the upload is {int(length) / 2**20:.1f} MiB, over the server's --max-upload-mb "
                                 f"{server.options.max_upload_mb:g}; send a shorter or smaller video")
        upload = await receive_upload(kind, request.stream(), server.temp_dir, limit)
        try:
            upload.sniff()
        except BaseException:
            upload.remove()
            raise
        return upload.path, upload.filename or "upload", upload.fields, upload.remove

    async def answer(request: Request, endpoint: str):
        start, status, kind = time.perf_counter(), 200, None
        admission = server.admission
        release = path = name = None
        try:
            server.authorise(request.headers.get("authorization"))
            admission.enter()
            server.pending.add(asyncio.current_task())
            server.metrics.queue_depth.set(admission.admitted - admission.running)
            try:
                path, name, fields, release = await source_of(request, endpoint)
                video, top_k, fusion = parse_options(fields, server.model, len(server.recognizer.categories))
                if endpoint == "explain" and "top_k" not in fields:
                    top_k = 1  # a map per class explained: the top one unless more are asked for
                server.check_duration(path, video, name)
                async with admission.slots:
                    server.pending.discard(asyncio.current_task())
                    admission.running += 1
                    server.metrics.queue_depth.set(admission.admitted - admission.running)
                    try:
                        body = await to_thread.run_sync(server.work, endpoint, path, name, video, top_k, fusion,
                                                        abandon_on_cancel=True)  # a drain's cut need not wait
                    finally:
                        admission.running -= 1
            finally:
                admission.admitted -= 1
                server.pending.discard(asyncio.current_task())
                server.metrics.queue_depth.set(admission.admitted - admission.running)
                if release is not None:
                    release()
            return Response(json.dumps(body, indent=2), media_type="application/json")
        except ApiError as err:
            status, kind = err.status, err.kind
            return failure(err)
        except ClientDisconnect:
            status, kind = 499, "disconnected"
            return Response(status_code=400)
        except asyncio.CancelledError:  # only a SIGTERM drain past --drain-timeout cancels a request
            status, kind = 503, "stopping"
            server.metrics.timeouts.labels("drain").inc()
            seconds = server.options.drain_seconds
            return failure(ApiError(503, f"the server is stopping: this request was cut {seconds:g} s after SIGTERM "
                                         "(--drain-timeout); retry later",
                                    "busy", {"Connection": "close", "Retry-After": str(server.options.retry_after)}))
        except Exception as err:
            status, kind = error_status(err)
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            if path is not None and name is not None:
                message = message.replace(str(path), name)  # a served path is read through its open handle
            if kind == "unexpected":
                message = f"unexpected {type(err).__name__}: {message}"
            headers = {"Connection": "close"} if kind == "timeout" else None  # the rest of the body never came
            return failure(ApiError(status, message, kind, headers))
        finally:
            server.metrics.observe(endpoint, status, kind, time.perf_counter() - start)

    @app.post("/v1/classify")
    async def classify(request: Request):
        return await answer(request, "classify")

    @app.post("/v1/features")
    async def features(request: Request):
        return await answer(request, "features")

    @app.post("/v1/explain")
    async def explain(request: Request):
        return await answer(request, "explain")

    @app.get("/v1/info")
    async def info(request: Request):
        try:
            server.authorise(request.headers.get("authorization"))
        except ApiError as err:
            return failure(err)
        return server.info()

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics():
        body, media_type = server.metrics.exposition()
        return Response(body, media_type=media_type)

    @app.get("/", response_class=HTMLResponse)
    async def index():
        return HTMLResponse(page)

    return app
