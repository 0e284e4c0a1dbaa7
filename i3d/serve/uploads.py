"""Uploads: a multipart body streamed into one temporary file, counted as it arrives, and sniffed.

Starlette's own form parser reads a whole body before anything can refuse it, so the body is parsed
here, chunk by chunk, with python-multipart's streaming parser: an upload over the limit is refused
when the limit is crossed, and the file is removed on every way out (a refusal, a client that goes
away mid-upload, an error in the network).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from i3d.errors import InputError

MAX_FIELD_BYTES = 4096
"""An option field (top_k, window...) longer than this is refused: options are short."""
MAX_FIELDS = 32
SNIFF_BYTES = 512


class UploadTooLarge(InputError):
    """The upload, or the video in it, is over the server's limit (HTTP 413)."""


class NotVideo(InputError):
    """The upload is not a video container this tool reads (HTTP 415)."""


class BadUpload(InputError):
    """The request's body is not the multipart form the API takes (HTTP 400)."""


def looks_like_video(head: bytes) -> bool:
    """Whether a file's first bytes are those of a video container: MP4/MOV (ISO boxes), Matroska/WebM,
    AVI, GIF, MPEG-TS, MPEG-PS, FLV, Ogg or ASF. The content decides, never the name."""
    return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
            or head[:4] == b"\x1a\x45\xdf\xa3"
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or head[:6] in (b"GIF87a", b"GIF89a")
            or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)
            or head[:4] == b"\x00\x00\x01\xba"
            or head[:3] == b"FLV"
            or head[:4] == b"OggS"
            or head[:4] == b"\x30\x26\xb2\x75")


def _disposition(value: str) -> dict[str, str]:
    """The parameters of a Content-Disposition header (name, filename), quotes removed."""
    params = {}
    for part in value.split(";")[1:]:
        key, _, raw = part.strip().partition("=")
        params[key.strip().lower()] = raw.strip().strip('"')
    return params


@dataclass
class Upload:
    """The form's option fields and where its video landed (``path``; None when no file came)."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str | None = None
    size: int = 0

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def sniff(self) -> None:
        """Refuse a file whose content is not a video container (NotVideo)."""
        with open(self.path, "rb") as file:
            head = file.read(SNIFF_BYTES)
        if not looks_like_video(head):
            raise NotVideo(f"{self.filename or 'the upload'}: not a video (its content is no container this tool "
                           "reads: mp4, mov, mkv, webm, avi, gif, ts, flv, ogg, wmv)")


class _Parser:
    """python-multipart's callbacks: option fields kept in memory, the ``video`` part written to a file."""

    def __init__(self, folder: Path, limit: int, file_field: str) -> None:
        self.upload, self.folder, self.limit, self.file_field = Upload(), folder, limit, file_field
        self._headers: dict[str, str] = {}
        self._name = self._value = b""
        self._part: str | None = None
        self._file = None
        self._text = bytearray()
        self.ended = False  # the closing boundary came

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done, "on_part_data": self._data, "on_part_end": self._end,
                "on_end": self._body_end}

    def _body_end(self) -> None:
        self.ended = True

    def _begin(self) -> None:
        self._headers, self._part, self._text = {}, None, bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.decode("latin-1").lower()] = self._value.decode("utf-8", "replace")
        self._name = self._value = b""

    def _headers_done(self) -> None:
        params = _disposition(self._headers.get("content-disposition", ""))
        self._part = params.get("name")
        if self._part is None:
            raise BadUpload("a form part has no name")
        if self._part == self.file_field:
            if self.upload.path is not None:
                raise BadUpload(f"the form holds more than one '{self.file_field}' part; send one video")
            fd, name = tempfile.mkstemp(prefix="upload-", suffix=".video", dir=self.folder)
            self._file = os.fdopen(fd, "wb")
            self.upload.path = Path(name)
            self.upload.filename = os.path.basename(params.get("filename", "").replace("\\", "/")) or None
        elif len(self.upload.fields) >= MAX_FIELDS:
            raise BadUpload(f"the form has more than {MAX_FIELDS} fields")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.upload.size += end - start
            if self.upload.size > self.limit:
                raise UploadTooLarge(f"the upload is over {self.limit / 2**20:g} MiB, the server's "
                                     "--max-upload-mb; send a shorter or smaller video")
            self._file.write(data[start:end])
            return
        self._text += data[start:end]
        if len(self._text) > MAX_FIELD_BYTES:
            raise BadUpload(f"the form field '{self._part}' is over {MAX_FIELD_BYTES} bytes")

    def _end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        else:
            self.upload.fields[self._part] = self._text.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def receive_upload(content_type: str, chunks: AsyncIterator[bytes], folder: Path, limit: int,
                         file_field: str = "video") -> Upload:
    """Parse a multipart body as it arrives: fields in memory, the ``file_field`` part into a temporary
    file in ``folder``. Raises UploadTooLarge past ``limit`` bytes of video, BadUpload for a body that is
    not a multipart form; any failure (a client gone mid-upload included) removes the file first."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise BadUpload("send the video as multipart/form-data in the field 'video' (or JSON {\"path\": ...})")
    state = _Parser(folder, limit, file_field)
    parser = MultipartParser(boundary, state.callbacks())
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
        if not state.ended:
            raise BadUpload("the multipart body ends before its closing boundary; send the whole form")
        state.close()
    except BaseException as err:
        state.close()
        state.upload.remove()
        if isinstance(err, ValueError) and not isinstance(err, InputError):  # the parser's own complaints
            raise BadUpload(f"the multipart body is malformed ({err})") from None
        raise
    if state.upload.path is None:
        raise BadUpload(f"the form has no '{file_field}' file; send the video in the field '{file_field}'")
    return state.upload
