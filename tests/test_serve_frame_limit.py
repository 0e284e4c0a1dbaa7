"""i3d serve --max-seconds counts the frames that decode, not the length a (forged) container header claims."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from support import needs_video, write_video
from test_serve import Served

from i3d.inputs.video import iter_video, video_duration

pytestmark = needs_video

FRAMES = 400  # 16 s at 25 fps
CLAIMED = 20  # 0.8 s


def forge(path: Path, frames: int, held: int = FRAMES) -> Path:
    """Rewrite an AVI's frame counts (the main header's dwTotalFrames and the stream's dwLength, ``held``)
    to ``frames``, in place."""
    data = bytearray(path.read_bytes())
    main, stream = data.find(b"avih"), data.find(b"strh")
    assert main > 0 and stream > 0
    assert struct.unpack_from("<I", data, main + 8 + 16) == (held,)
    assert struct.unpack_from("<I", data, stream + 8 + 32) == (held,)
    struct.pack_into("<I", data, main + 8 + 16, frames)
    struct.pack_into("<I", data, stream + 8 + 32, frames)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("allowed")
    forged = forge(write_video(folder / "forged.avi", FRAMES), CLAIMED)
    assert video_duration(forged) == pytest.approx(CLAIMED / 25)  # the header lies: under --max-seconds 2
    assert sum(1 for _ in iter_video(forged)) == FRAMES  # while all 400 frames decode
    short = write_video(folder / "short.avi", 45)  # 1.8 s, honest
    return {"forged": forged, "short": short, "folder": folder}


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_weights_dir, videos):
    served = Served(shared_weights_dir, tmp_path_factory.mktemp("uploads"), "--max-seconds", "2",
                    "--allow-dir", str(videos["folder"]))
    yield served
    assert served.stop() == 0


def test_a_forged_header_is_refused_once_the_decoded_frames_pass_the_limit(server, videos):
    status, _, answer = server.post("/v1/classify", video=videos["forged"])
    assert (status, answer["kind"]) == (413, "input"), answer
    assert "--max-seconds 2" in answer["error"] and "50 frames" in answer["error"]
    assert "\n" not in answer["error"]
    body = json.dumps({"path": "forged.avi"}).encode()
    status, _, raw = server.request("POST", "/v1/classify", body, {"Content-Type": "application/json"})
    assert (status, json.loads(raw)["kind"]) == (413, "input")
    # the first 2 s of it are within the limit
    status, _, answer = server.post("/v1/classify", {"end": "2", "window": "32"}, videos["forged"])
    assert status == 200, answer
    assert server.uploads() == []


def test_a_short_clip_under_the_limit_is_answered(server, videos):
    status, _, answer = server.post("/v1/classify", {"window": "32", "top_k": "3"}, videos["short"])
    assert status == 200, answer
    assert answer["video"] == "short.avi" and len(answer["top"]) == 3
