"""The heat wherever an answer is shown: ``--heat`` on classify's and segments' ``--annotate``, ``POST /v1/explain``
and the page's toggle. The heat drawn is checked against the library's :func:`i3d.tasks.explain.explain` on the
same windows, computed in this process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from support import ARM_WRESTLING, needs_video, run_cli

pytestmark = needs_video

WINDOW = ("--max-frames", "64", "--window", "32")  # two 1.28 s windows of arm_wrestling.mp4 (340 x 256)


def read_frames(path) -> tuple[list[np.ndarray], float]:
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame[..., ::-1].astype(np.float32))
    capture.release()
    return frames, fps


@pytest.fixture(scope="module")
def library_heat(recognizer):
    """The library's explanation of arm_wrestling's first 64 frames in 32-frame windows (Grad-CAM, Mixed_5c)."""
    from i3d.preprocess.windows import VideoOptions
    from i3d.tasks.explain import explain

    return explain(recognizer, ARM_WRESTLING, video=VideoOptions(max_frames=64, window=32))


def heat_masks(explanation, seconds: float, shape) -> tuple[np.ndarray, np.ndarray]:
    """(hot, cold) masks of a full frame at ``seconds``: where the library's heat of the window's top class is over
    0.3 (the window's hottest pixel is 1), and where the frame gets none (outside the crop, or under 0.02)."""
    [window] = [w for w in explanation.windows if w.span.start - 1e-6 <= seconds < w.span.end - 1e-6]
    crop = window.maps[0].crop_map[min(int(np.floor((seconds - window.span.start) * 25 + 1e-6)), 31)]
    g = explanation.geometry
    assert (g.width, g.height, g.factor) == (340, 256, (1.0, 1.0))  # 256 px short side: the crop is a plain cut
    x0, y0 = int(g.shift[0]), int(g.shift[1])
    full = np.zeros(shape[:2], np.float32)
    inside = np.zeros(shape[:2], bool)
    full[y0:y0 + 224, x0:x0 + 224] = crop
    inside[y0:y0 + 224, x0:x0 + 224] = True
    hot = full > 0.3
    cold = ~inside | (full < 0.02)
    hot[:80, :170] = cold[:80, :170] = False  # the label panel's corner: drawn the same on both
    return hot, cold


def compare_heat(heated, plain, explanation) -> None:
    """Both videos have the same frames; with heat, they change where the library's heat is and nowhere else."""
    frames, fps = read_frames(heated)
    plain_frames, plain_fps = read_frames(plain)
    assert len(frames) == len(plain_frames) > 60 and fps == plain_fps
    hot_change, cold_change = [], []
    for n, (a, b) in enumerate(zip(frames, plain_frames)):
        hot, cold = heat_masks(explanation, n / fps, a.shape)
        change = np.abs(a - b).mean(axis=-1)
        assert cold.sum() > 5000
        cold_change.append(change[cold].mean())
        if hot.sum() > 500:  # a frame with a hot region (not every frame of a window is)
            hot_change.append(change[hot].mean())
            assert hot_change[-1] > 3 * cold_change[-1], (n, hot_change[-1], cold_change[-1])
    # blended at 0.6 x heat: a hot pixel moves tens of levels towards the colour map; a cold one only by the codec
    assert len(hot_change) > len(frames) / 3
    assert np.median(hot_change) > 10, np.round(hot_change, 1)
    assert np.median(cold_change) < 4, np.round(cold_change, 1)


@pytest.mark.slow  # three runs of the network, two of them with Grad-CAM
def test_classify_annotate_heat_draws_the_librarys_heat(tmp_path, shared_weights_dir, library_heat):
    assert [w.maps[0].label for w in library_heat.windows] == ["arm wrestling"] * 2
    for name, extra in (("heat.mp4", ("--heat",)), ("plain.mp4", ())):
        done = run_cli("--video", str(ARM_WRESTLING), *WINDOW, "--top-k", "3", "--offline",
                       "--annotate", str(tmp_path / name), *extra, weights_dir=shared_weights_dir)
        assert done.returncode == 0, done.stderr
    compare_heat(tmp_path / "heat.mp4", tmp_path / "plain.mp4", library_heat)


def run_segments(*args: str, weights_dir) -> subprocess.CompletedProcess:
    return run_cli("segments", str(ARM_WRESTLING), *args, weights_dir=weights_dir, module="i3d")


@pytest.mark.slow  # two segments runs, one with Grad-CAM
def test_segments_annotate_heat_draws_the_librarys_heat(tmp_path, shared_weights_dir, library_heat):
    for name, extra in (("heat", ("--heat",)), ("plain", ())):
        done = run_segments("--out", str(tmp_path / name), *WINDOW, "--stride", "32", "--offline", "--no-charts",
                            "--format", "json", "--annotate", str(tmp_path / f"{name}.mp4"), *extra,
                            weights_dir=shared_weights_dir)
        assert done.returncode == 0, done.stderr
        [segment] = json.loads(done.stdout)["segments"]["arm_wrestling"]
        assert segment["label"] == "arm wrestling"  # the class whose heat the library computed
    compare_heat(tmp_path / "heat.mp4", tmp_path / "plain.mp4", library_heat)


def test_heat_without_annotate_is_a_usage_error(tmp_path):
    """Refused before any weights are looked for (the weights folder is empty), exit 2 naming both flags."""
    classify = run_cli("--video", str(ARM_WRESTLING), "--heat", "--offline", weights_dir=tmp_path)
    segments = run_segments("--out", str(tmp_path / "out"), "--heat", "--offline", weights_dir=tmp_path)
    for done in (classify, segments):
        assert done.returncode == 2, done.stderr
        assert "--heat" in done.stderr and "--annotate" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def served(tmp_path_factory, shared_weights_dir):
    from test_serve import Served  # the server process the API tests start, on loopback

    server = Served(shared_weights_dir, tmp_path_factory.mktemp("uploads"))
    yield server
    assert server.stop() == 0


@pytest.mark.slow  # a server process and Grad-CAM in it
def test_v1_explain_answers_the_librarys_maps(served, library_heat):
    from i3d.tasks.explain.regions import heat

    status, _, body = served.post("/v1/explain", {"window": "32", "max_frames": "64"}, ARM_WRESTLING)
    assert status == 200, body
    assert served.uploads() == []
    expected = library_heat.as_json()
    assert body["video"] == "arm_wrestling.mp4" and body["layer"] == "Mixed_5c" and body["method"] == "gradcam"
    assert body["video_size"] == [340, 256] and body["crop_box"] == [58.0, 16.0, 282.0, 240.0]
    assert len(body["palette"]) == 256 and body["alpha"] == 0.6
    assert len(body["windows"]) == len(library_heat.windows) == 2
    for got, want, window in zip(body["windows"], expected["windows"], library_heat.windows):
        assert (got["start"], got["end"], got["frames"]) == (want["start"], want["end"], want["frames"])
        [got_map], [want_map], [item] = got["maps"], want["maps"], window.maps  # one map: the top class
        assert (got_map["class"], got_map["index"]) == (want_map["class"], want_map["index"]) == ("arm wrestling", 6)
        assert got_map["layer_shape"] == want_map["layer_shape"] == [4, 7, 7]
        assert got_map["probability"] == pytest.approx(want_map["probability"], abs=1e-3)
        # the heat the page draws: the library's Grad-CAM map at Mixed_5c, its positive part over its maximum
        np.testing.assert_allclose(np.array(got_map["heat"]), heat(item.layer_map), atol=1e-3)
        assert np.array(got_map["heat"]).max() == 1.0
        np.testing.assert_allclose(got_map["curve"], want_map["curve"], atol=1e-4)


@pytest.mark.slow  # a server process, ten seconds of video and Grad-CAM
def test_v1_explain_keeps_classifys_limits(served):
    status, _, body = served.post("/v1/explain", {"window": "32", "top_k": "21"}, ARM_WRESTLING)
    assert status == 400 and body["kind"] == "usage" and "top" in body["error"]
    status, _, body = served.post("/v1/explain", {"layer": "Mixed_4f"}, ARM_WRESTLING)
    assert status == 400 and body["kind"] == "usage" and "layer" in body["error"]
    status, _, body = served.post("/v1/explain", {}, data=b"not a video at all" * 40, name="x.mp4")
    assert status == 415 and body["kind"] == "input"
    assert served.uploads() == []


HEAT_PIXELS = """
const canvas = document.getElementById("heat");
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let painted = 0;
for (let i = 3; i < data.length; i += 4) if (data[i] > 0) painted++;
return [canvas.width, canvas.height, painted, getComputedStyle(canvas).display];
"""

HEAT_COLUMNS = """
const canvas = document.getElementById("heat");
const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
let first = canvas.width, last = -1;
for (let i = 3; i < data.length; i += 4) if (data[i] > 0) {
  const x = ((i - 3) / 4) % canvas.width; first = Math.min(first, x); last = Math.max(last, x);
}
return [first, last];
"""


def first_seconds(source, seconds: float, out):
    """``out``: the video's packets up to ``seconds`` copied as they are (same codec, size and pixel aspect)."""
    import av

    with av.open(str(source)) as given, av.open(str(out), "w") as written:
        stream = given.streams.video[0]
        copy = written.add_stream_from_template(stream)
        for packet in given.demux(stream):
            if packet.dts is None:  # the demuxer's empty packet at the end
                continue
            if packet.dts * stream.time_base >= seconds:
                break
            packet.stream = copy
            written.mux(packet)
    return out


@pytest.mark.slow  # a real browser, a server process and Grad-CAM over three seconds of video
def test_the_pages_heat_toggle_draws_over_the_video(served, tmp_path):
    """In Chromium, the toggle asks /v1/explain and paints heat on the canvas over the playing video (and, off,
    hides it). Skipped where Debian's chromium and chromium-driver are missing, except under CI."""
    from support import skip_outside_ci

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        skip_outside_ci("Debian's chromium and chromium-driver are not installed")
    # the video's first 3 s (its own encoding): the page classifies and explains all of a file, and 10 s of
    # Grad-CAM cost four times as much for the same drawing
    clip = first_seconds(ARM_WRESTLING, 3.0, tmp_path / "arm_wrestling.mp4")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager: never look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = Options()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://{served.host}:{served.port}/")
        WebDriverWait(driver, 30).until(lambda d: "400 classes" in d.find_element(By.ID, "info").text)
        driver.find_element(By.ID, "file").send_keys(str(clip))
        WebDriverWait(driver, 300).until(expected_conditions.visibility_of_element_located((By.ID, "top1")))
        assert driver.execute_script(HEAT_PIXELS)[3] == "none"  # off until asked for
        driver.find_element(By.ID, "heat-toggle").click()
        WebDriverWait(driver, 300).until(
            lambda d: d.find_element(By.ID, "heat-status").text.startswith(("Grad-CAM", "refused")))
        assert driver.find_element(By.ID, "heat-status").text == "Grad-CAM at Mixed_5c"
        driver.execute_script("const v = document.getElementById('video'); v.pause(); v.currentTime = 1.0;")
        WebDriverWait(driver, 30).until(lambda d: d.execute_script(HEAT_PIXELS)[2] > 0)
        width, height, painted, display = driver.execute_script(HEAT_PIXELS)
        video = driver.execute_script("const v = document.getElementById('video'); "
                                      "return [v.clientWidth, v.clientHeight, v.videoWidth, v.videoHeight];")
        # 340 x 256 stored, shown 427 x 256 (its pixels are not square): the canvas covers what is shown
        assert (width, height) == tuple(video[:2]) and video[2:] == [427, 256] and display != "none"
        # the heat lies on the crop only: at most the crop's share (224 x 224 of 340 x 256) of the canvas
        assert 0 < painted <= 224 * 224 / (340 * 256) * width * height * 1.02
        columns = driver.execute_script(HEAT_COLUMNS)  # canvas columns with paint: the crop's, 58-282 of 340
        assert columns[0] >= 58 / 340 * width - 2 and columns[1] <= 282 / 340 * width + 2, (columns, width)
        driver.find_element(By.ID, "heat-toggle").click()
        assert driver.execute_script(HEAT_PIXELS)[3] == "none"
    finally:
        driver.quit()
    assert served.uploads() == []
