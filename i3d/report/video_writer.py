"""Write RGB frames as a video every browser plays: H.264 MP4, VP9 WebM or an animated GIF.

OpenCV's pip wheels cannot encode H.264, so MP4 and WebM go through PyAV,
whose wheels bundle FFmpeg with libx264 and libvpx. MP4 is H.264 (libx264,
CRF 20) in yuv420p with the ``moov`` index before the media data
(``movflags=+faststart``), so a browser starts playing before the whole file
has arrived; WebM is VP9 in yuv420p. yuv420p stores colour at half
resolution, so both need even dimensions: an odd width or height is padded by
one pixel, a copy of the last column or row (nothing of the picture is lost).
GIF is written by Pillow with one 256-colour palette per frame and frame
durations in hundredths of a second that add up to the true times; Pillow
merges a frame identical to the one before it into that frame's duration.

Frames go to a temporary file beside the target, renamed onto it only when
the video is complete, so a failed or interrupted run leaves no half-written
video.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from i3d.files import atomic_path, check_output_file

VIDEO_TYPES = {".mp4": "h264", ".webm": "vp9", ".gif": "gif"}
"""The video types written, by extension, and their codec."""

_ENCODERS = {".mp4": ("mp4", "libx264", {"crf": "20", "preset": "medium"}),
             ".webm": ("webm", "libvpx-vp9", {"crf": "32", "b": "0", "deadline": "good", "cpu-used": "5",
                                              "row-mt": "1"})}


def check_video_path(path: str | os.PathLike, option: str = "out") -> Path:
    """Refuse a video name no run could write (unknown type, a folder, an unwritable folder): OptionError."""
    return check_output_file(path, option, tuple(VIDEO_TYPES))


def even_size(width: int, height: int) -> tuple[int, int]:
    """The size yuv420p needs: each odd dimension grown by one pixel."""
    return width + width % 2, height + height % 2


def pad_even(frame: np.ndarray) -> np.ndarray:
    """``frame`` with a copy of its last column and/or row added where its width or height is odd."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


@dataclass
class VideoWriter:
    """Takes RGB uint8 frames of one size; counts them. Made by :func:`open_video`."""

    path: Path
    fps: float
    frames: int = 0
    width: int = 0  # the size written (padded to even for MP4/WebM)
    height: int = 0
    codec: str = ""

    def write(self, frame: np.ndarray) -> None:
        raise NotImplementedError


class _AVWriter(VideoWriter):
    """MP4 or WebM through PyAV; the stream is opened on the first frame, when the size is known."""

    def __init__(self, path: Path, fps: float, tmp: Path, suffix: str) -> None:
        super().__init__(path, fps, codec=VIDEO_TYPES[suffix])
        self._tmp, self._suffix = tmp, suffix
        self._container = self._stream = None

    def _open(self, width: int, height: int) -> None:
        import av

        fmt, encoder, options = _ENCODERS[self._suffix]
        container_options = {"movflags": "+faststart"} if fmt == "mp4" else {}
        self._container = av.open(str(self._tmp), "w", format=fmt, options=container_options)
        self._stream = self._container.add_stream(encoder, rate=Fraction(self.fps).limit_denominator(1001))
        self.width, self.height = even_size(width, height)
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(options)

    def write(self, frame: np.ndarray) -> None:
        import av

        if self._container is None:
            self._open(frame.shape[1], frame.shape[0])
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(pad_even(frame)), format="rgb24")
        for packet in self._stream.encode(picture):
            self._container.mux(packet)
        self.frames += 1

    def finish(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()  # writes the index; faststart moves it before the media data
        self._container = None

    def abandon(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None


class _GIFWriter(VideoWriter):
    """Animated GIF through Pillow: frames quantised as they come, saved at the end."""

    def __init__(self, path: Path, fps: float, tmp: Path) -> None:
        super().__init__(path, fps, codec="gif")
        self._tmp = tmp
        self._images: list = []
        self._durations: list[int] = []

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        self.height, self.width = frame.shape[:2]
        self._images.append(Image.fromarray(np.ascontiguousarray(frame), "RGB").quantize(colors=256))
        # hundredths of a second, rounded on the running total so the durations add up to the true times
        self._durations.append(10 * (round((self.frames + 1) * 100 / self.fps) - round(self.frames * 100 / self.fps)))
        self.frames += 1

    def finish(self) -> None:
        if not self._images:
            return
        first, *rest = self._images
        first.save(self._tmp, format="GIF", save_all=True, append_images=rest, duration=self._durations, loop=0,
                   disposal=1)
        self._images.clear()

    def abandon(self) -> None:
        self._images.clear()


@contextlib.contextmanager
def open_video(path: str | os.PathLike, fps: float) -> Iterator[VideoWriter]:
    """A writer for ``path`` (type by extension) at ``fps``; the file appears, complete, when the block ends.

    Nothing is written when the block raises or no frame was given.
    """
    path = check_video_path(path)
    suffix = path.suffix.lower()
    with atomic_path(path, suffix=suffix) as tmp:
        writer = _GIFWriter(path, fps, tmp) if suffix == ".gif" else _AVWriter(path, fps, tmp, suffix)
        try:
            yield writer
        except BaseException:
            writer.abandon()
            raise
        if writer.frames == 0:
            raise ValueError("no frames to write")
        writer.finish()
