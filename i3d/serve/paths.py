"""The files JSON requests name under ``--allow-dir``: opened once, at the check, and read from that handle.

A path checked when a request is admitted and opened when a slot frees could be swapped in between
(a folder replaced by a link to elsewhere). Here a name that lies outside the folder once resolved is
refused at once; then it is opened once, without blocking (a FIFO would), and what was opened is
checked: the kernel's own name for the open file must lie under the served folder, and it must be a
regular file. The request then reads ``/proc/self/fd/N``, the file that passed the check, whatever
the name points to by then.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from i3d.serve.uploads import BadUpload

MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


class PathRefused(Exception):
    """A path the server will not serve: its HTTP status (403, 404) and the one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _check_name(given: str) -> bytes:
    """The path's bytes, once it is one a file system could hold (else BadUpload, a 400)."""
    if "\x00" in given:
        raise BadUpload("\"path\" holds a NUL character; name a file under the served folder")
    try:
        given.encode("utf-8")  # a lone surrogate (JSON's "\udcff") names no file and cannot be answered back
        raw = os.fsencode(given)
    except UnicodeError:
        raise BadUpload("\"path\" is not valid Unicode text; name a file under the served folder") from None
    if len(raw) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in raw.split(b"/")):
        raise BadUpload(f"\"path\" is over {MAX_PATH_BYTES} bytes or has a part over {MAX_NAME_BYTES}; "
                        "name a file under the served folder")
    return raw


class AllowedFile:
    """A file under the served folder, held open (``O_PATH``) from its check until :meth:`close`."""

    def __init__(self, given: str, root: Path) -> None:
        raw = _check_name(given)
        shown = given
        target = raw if os.path.isabs(raw) else os.path.join(os.fsencode(root), raw)
        if not Path(os.fsdecode(target)).resolve().is_relative_to(root):  # outside by name: 403, found or not
            raise PathRefused(403, f"{shown}: outside the served folder (--allow-dir); upload the video instead")
        try:
            self.fd = os.open(target, os.O_PATH | os.O_CLOEXEC)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise PathRefused(404, f"{shown}: no such file under the served folder") from None
            if err.errno == errno.ENAMETOOLONG:
                raise BadUpload("\"path\" is too long for the file system; name a file under the served "
                                "folder") from None
            raise PathRefused(403, f"{shown}: cannot be opened ({err.strerror or err})") from None
        try:
            real = Path(os.readlink(f"/proc/self/fd/{self.fd}"))
            if not real.is_relative_to(root):
                raise PathRefused(403, f"{shown}: outside the served folder (--allow-dir); upload the video instead")
            if not stat.S_ISREG(os.fstat(self.fd).st_mode):
                raise PathRefused(404, f"{shown}: not a regular file under the served folder")
        except BaseException:
            os.close(self.fd)
            raise
        self.path = Path(f"/proc/self/fd/{self.fd}")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
