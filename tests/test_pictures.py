"""Pictures: the answer drawn on the video (--annotate), charts (--plot) and a batch's confusion matrix.

The drawing is tested on made-up results over small synthetic videos (no
network); one test runs classify end to end on a short clip.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from support import ARM_WRESTLING, needs_video, run_cli

from i3d.errors import OptionError
from i3d.results import Result, WindowResult, WindowSpan, top_k
from i3d.weights.sets import get_weight_set

CATEGORIES = get_weight_set("rgb", "kinetics").categories


def fake_result(spans: list[tuple[float, float]], fps: float = 25.0) -> Result:
    """A Result whose window i favours class 10 + i (about 60%) over class 3 (about 20%)."""
    windows = []
    for i, (start, end) in enumerate(spans):
        logits = np.zeros(len(CATEGORIES))
        logits[10 + i], logits[3] = 7.1, 6.0
        windows.append(WindowResult(WindowSpan(i, round(start * fps), round((end - start) * fps), start, end),
                                    logits, top_k(logits, CATEGORIES, 3)))
    mean = sum(w.logits for w in windows) / len(windows)
    return Result(mean, top_k(mean, CATEGORIES, 5), tuple(windows), CATEGORIES, {"rgb": 0}, {}, "test", "mean")


def smooth_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """RGB frames a codec keeps well: colour gradients and a grey square moving right 3 px per frame."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 200 // max(width - 1, 1), y * 200 // max(height - 1, 1),
                     np.full_like(x, 90)], axis=-1).astype(np.uint8)
    frames = []
    for i in range(count):
        frame = base.copy()
        left = (10 + 3 * i) % (width - 30)
        frame[height // 2: height // 2 + 24, left:left + 24] = 160
        frames.append(frame)
    return frames


def write_smooth_video(path, count: int = 40, width: int = 320, height: int = 240, fps: float = 25.0):
    """A near-lossless MJPG .avi of :func:`smooth_frames`; returns the path."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for frame in smooth_frames(count, width, height):
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def decode(path) -> tuple[list[np.ndarray], dict]:
    """Every frame of a video as RGB arrays (PyAV), with its stream's codec, pixel format and rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        info = {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "rate": float(stream.average_rate or 0)}
    return frames, info


def mp4_boxes(path) -> list[str]:
    """The MP4's top-level box types in file order (sizes of 0 and 64-bit sizes handled)."""
    boxes, data = [], path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8:offset + 16])[0]
        elif size == 0:
            size = len(data) - offset
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


def source_frames_rgb(path) -> list[np.ndarray]:
    from i3d.inputs.video import iter_video

    return [frame for frame, _, _ in iter_video(path, prepare=lambda f: f)]


def outside(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of ``frame`` outside ``box`` (left, top, right, bottom), as one array."""
    x0, y0, x1, y1 = box
    return np.concatenate([frame[y1:].reshape(-1, 3), frame[:y1, x1:].reshape(-1, 3)]).astype(np.float64)


# --- which window each moment shows ---

def test_each_moment_shows_the_covering_window_with_the_nearest_centre():
    from i3d.report.annotate import window_at

    windows = fake_result([(0.0, 4.0), (3.0, 7.0), (6.0, 10.0), (12.0, 14.0)]).windows
    assert window_at(windows, 0.0).span.index == 0
    assert window_at(windows, 3.4).span.index == 0  # centres 2.0 and 5.0: 1.4 against 1.6
    assert window_at(windows, 3.6).span.index == 1
    assert window_at(windows, 3.5).span.index == 0  # a tie goes to the earlier window
    assert window_at(windows, 9.99).span.index == 2
    assert window_at(windows, 10.0) is None  # end excluded
    assert window_at(windows, 11.0) is None  # a gap between windows
    assert window_at(windows, 13.0).span.index == 3


def test_text_grows_with_the_frame():
    from i3d.report.annotate import font_size, make_panel

    assert font_size(320, 240) == 11 and font_size(1920, 1080) == 49 and font_size(64, 48) == 11
    window = fake_result([(0.0, 1.0)]).windows[0]
    small, large = make_panel(window, 320, 240), make_panel(window, 1920, 1080)
    assert large.rgb.shape[0] > 3.5 * small.rgb.shape[0]
    assert small.rgb.shape[0] < 240 / 2 and small.rgb.shape[1] < 320 * 0.75


def test_the_panel_changes_its_box_and_nothing_else():
    from i3d.report.annotate import draw_panel, make_panel

    frame = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    panel = make_panel(fake_result([(0.0, 1.0)]).windows[0], 320, 240)
    drawn = draw_panel(frame, panel)
    x0, y0, x1, y1 = panel.box
    assert (x0, y0) == (6, 6) and x1 < 320 and y1 < 240
    assert np.array_equal(outside(drawn, panel.box), outside(frame, panel.box))
    inside = np.abs(drawn[y0:y1, x0:x1].astype(int) - frame[y0:y1, x0:x1]).mean()
    assert inside > 60  # a dark box with white text over noise averaging 127


def test_a_tiny_frame_gets_a_panel_clipped_to_it():
    from i3d.report.annotate import draw_panel, make_panel

    frame = np.full((48, 64, 3), 200, np.uint8)
    drawn = draw_panel(frame, make_panel(fake_result([(0.0, 1.0)]).windows[0], 64, 48))
    assert drawn.shape == frame.shape and np.abs(drawn.astype(int) - 200).mean() > 50


# --- the annotated video ---

def test_annotated_mp4_is_h264_yuv420p_faststart_with_every_frame(tmp_path):
    from i3d.report.annotate import annotate_video, make_panel

    source = write_smooth_video(tmp_path / "clip.avi", count=40)
    result = fake_result([(0.0, 0.8), (0.6, 1.6)])
    written = annotate_video(result, source, tmp_path / "out.mp4")
    frames, info = decode(tmp_path / "out.mp4")
    assert (written.frames, written.width, written.height, written.codec) == (40, 320, 240, "h264")
    assert len(frames) == 40 and frames[0].shape == (240, 320, 3)
    assert info == {"codec": "h264", "pix_fmt": "yuv420p", "rate": 25.0}
    boxes = mp4_boxes(tmp_path / "out.mp4")
    assert boxes.index("moov") < boxes.index("mdat"), boxes
    assert not list(tmp_path.glob(".out.mp4.*"))  # no temporary left behind

    originals = source_frames_rgb(source)
    box = make_panel(result.windows[0], 320, 240).box
    x0, y0, x1, y1 = box
    for index in (0, 19, 39):
        rest = np.abs(outside(frames[index], box) - outside(originals[index], box)).mean()
        label = np.abs(frames[index][y0:y1, x0:x1].astype(float) - originals[index][y0:y1, x0:x1]).mean()
        assert rest < 2.5, (index, rest)  # H.264 at CRF 20 on smooth frames: about 1 level
        assert label > 20, (index, label)  # the panel: about 39 here


def test_frames_in_a_gap_between_windows_are_unchanged(tmp_path):
    from i3d.report.annotate import annotate_video

    source = write_smooth_video(tmp_path / "clip.avi", count=40)
    annotate_video(fake_result([(0.0, 0.6), (1.0, 1.6)]), source, tmp_path / "gap.mp4")
    frames, _ = decode(tmp_path / "gap.mp4")
    originals = source_frames_rgb(source)
    differences = [np.abs(a.astype(float) - b).mean() for a, b in zip(frames, originals)]
    assert len(frames) == 40
    assert max(differences[15:25]) < 1.5  # frames 15-24 (0.6-1.0 s): no window, no panel
    assert min(differences[:15] + differences[25:]) > 2.5


def test_a_frames_folder_of_odd_size_is_padded_by_one_pixel_for_yuv420p(tmp_path):
    from i3d.report.annotate import annotate_video

    source = tmp_path / "frames"
    source.mkdir()
    for index, frame in enumerate(smooth_frames(12, 161, 121), start=1):
        cv2.imwrite(str(source / f"{index}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    written = annotate_video(fake_result([(0.0, 0.48)]), source, tmp_path / "odd.mp4")
    frames, info = decode(tmp_path / "odd.mp4")
    assert (written.width, written.height, len(frames)) == (162, 122, 12)
    assert frames[0].shape == (122, 162, 3) and info["pix_fmt"] == "yuv420p"
    last = frames[5].astype(float)
    assert np.abs(last[:, -1] - last[:, -2]).mean() < 3 and np.abs(last[-1] - last[-2]).mean() < 3


def test_annotated_webm_and_gif(tmp_path):
    from PIL import Image

    from i3d.report.annotate import annotate_video

    source = write_smooth_video(tmp_path / "clip.avi", count=20, width=160, height=120)
    result = fake_result([(0.0, 0.8)])
    webm = annotate_video(result, source, tmp_path / "out.webm")
    frames, info = decode(tmp_path / "out.webm")
    assert (webm.frames, len(frames), frames[0].shape, info["codec"]) == (20, 20, (120, 160, 3), "vp9")
    gif = annotate_video(result, source, tmp_path / "out.gif")
    with Image.open(tmp_path / "out.gif") as image:
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info["duration"])
        assert (gif.frames, image.n_frames, image.size) == (20, 20, (160, 120))
    assert sum(durations) == 800  # 20 frames at 25 fps


def test_a_source_at_its_own_frame_rate_keeps_every_frame(tmp_path):
    from i3d.report.annotate import annotate_video

    source = write_smooth_video(tmp_path / "clip30.avi", count=36, fps=30.0)  # 1.2 s
    written = annotate_video(fake_result([(0.0, 1.2)]), source, tmp_path / "out.mp4")
    frames, info = decode(tmp_path / "out.mp4")
    assert (written.frames, len(frames), written.fps, info["rate"]) == (36, 36, 30.0, 30.0)


def test_only_the_classified_span_is_written(tmp_path):
    from i3d.report.annotate import annotate_video

    source = write_smooth_video(tmp_path / "clip.avi", count=40)
    written = annotate_video(fake_result([(0.4, 1.2)]), source, tmp_path / "part.mp4")  # as --start 0.4 --end 1.2
    assert written.frames == 20


@pytest.mark.parametrize("name, words", [("out.avi", "unknown file type '.avi'; use .mp4, .webm or .gif"),
                                         ("folder", "is a folder"),
                                         ("a_file/out.mp4", "is not a folder")])
def test_unwritable_video_names_are_refused_before_any_work(tmp_path, name, words):
    from i3d.report.annotate import annotate_video

    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "a_file").write_text("x")
    target = tmp_path / ("folder.mp4" if name == "folder" else name)
    with pytest.raises(OptionError, match=words.replace(".", r"\.").replace("(", r"\(")):
        annotate_video(fake_result([(0.0, 1.0)]), tmp_path / "never_read.avi", target)


# --- charts ---

def png_size(path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 10  # something is drawn
    return image.size


def test_plot_of_a_clip_and_of_a_video(tmp_path):
    from i3d.report.charts import plot_result, result_chart_size

    one, three = fake_result([(0.0, 4.0)]), fake_result([(0.0, 4.0), (3.0, 7.0), (6.0, 10.0)])
    assert result_chart_size(one) == (1000, 110 + 30 * 5) and result_chart_size(three) == (1000, 260 + 400)
    assert png_size(plot_result(one, tmp_path / "clip.png")) == (1000, 260)
    assert png_size(plot_result(three, tmp_path / "video.png")) == (1000, 660)
    with pytest.raises(OptionError, match="unknown file type '.jpg'; use .png"):
        plot_result(one, tmp_path / "chart.jpg")


def test_confusion_and_per_class_charts(tmp_path):
    from i3d.report.charts import confusion_chart_size, plot_confusion, plot_per_class_accuracy

    truth, predicted = [5, 5, 9, 9, 12], [5, 9, 9, 9, 300]  # class 300 never true: the "other" column
    assert confusion_chart_size(3, 4) == (700, 500) and confusion_chart_size(30, 31) == (1044, 940)
    assert confusion_chart_size(400, 401) == (300 + 9 * 401, 220 + 9 * 400)  # cells shrink to stay near 4000 px
    assert png_size(plot_confusion(truth, predicted, CATEGORIES, tmp_path / "c.png")) == (700, 500)
    many = list(range(30))
    assert png_size(plot_confusion(many, many[1:] + [0], CATEGORIES, tmp_path / "c30.png")) == (1020, 940)
    rows = [("archery", 2, 0.5, 1.0), ("bowling", 2, 1.0, 1.0), ("welding", 1, 0.0, 0.0)]
    assert png_size(plot_per_class_accuracy(rows, tmp_path / "a.png")) == (1000, 120 + 3 * 22)


def test_batch_charts_are_best_effort(tmp_path, monkeypatch, capsys):
    import i3d.report.charts as charts
    from i3d.tasks.batch.charts import draw_charts

    rows = [("abseiling", 1, 1.0, 1.0), ("archery", 2, 0.5, 1.0)]
    draw_charts(tmp_path, [0, 5, 5], [0, 5, 0], CATEGORIES, rows)
    assert png_size(tmp_path / "confusion.png") == (700, 500)
    assert png_size(tmp_path / "per_class_accuracy.png") == (1000, 120 + 2 * 22)

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(charts, "plot_confusion", broken)
    (tmp_path / "confusion.png").unlink()
    draw_charts(tmp_path, [0, 5, 5], [0, 5, 0], CATEGORIES, rows)
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: could not write confusion.png (No space left on device); continuing without it"]
    assert not (tmp_path / "confusion.png").exists() and (tmp_path / "per_class_accuracy.png").is_file()


# --- the command ---

def test_cli_refuses_pictures_it_cannot_make(tmp_path):
    clip = write_smooth_video(tmp_path / "clip.avi", count=12)
    cases = [(["--annotate", str(tmp_path / "x.mp4")], "--annotate draws on the input video; give --video or --frames"),
             (["--video", str(clip), "--annotate", str(tmp_path / "x.mov")],
              f"--annotate {tmp_path / 'x.mov'}: unknown file type '.mov'; use .mp4, .webm or .gif"),
             (["--video", str(clip), "--plot", str(tmp_path / "x.svg")],
              f"--plot {tmp_path / 'x.svg'}: unknown file type '.svg'; use .png")]
    for args, words in cases:
        done = run_cli(*args, "--offline", weights_dir=tmp_path / "no_weights")
        assert done.returncode == 2, done.stderr
        assert done.stderr.strip() == f"error: {words}"
        assert not list(tmp_path.glob("x.*"))


def test_cli_classify_annotates_and_plots_a_short_video(tmp_path, shared_weights_dir):
    clip = write_smooth_video(tmp_path / "clip.avi", count=30, width=200, height=150)
    done = run_cli("--video", str(clip), "--window", "16", "--stride", "12", "--top-k", "4",
                   "--annotate", str(tmp_path / "out" / "annotated.mp4"), "--plot", str(tmp_path / "chart.png"),
                   "--offline", weights_dir=shared_weights_dir)
    assert done.returncode == 0, done.stderr
    assert "wrote " + str(tmp_path / "out" / "annotated.mp4") + ": 30 frames, 200x150 at 25 fps, h264" in done.stderr
    assert "| window |" in done.stdout  # three windows: the timeline table
    frames, info = decode(tmp_path / "out" / "annotated.mp4")
    assert len(frames) == 30 and info["codec"] == "h264"
    assert png_size(tmp_path / "chart.png") == (1000, 110 + 30 * 4 + 400)


@needs_video
def test_arm_wrestling_annotates_every_source_frame(tmp_path):
    from i3d.report.annotate import annotate_video

    written = annotate_video(fake_result([(0.0, 4.0), (3.0, 7.0), (6.0, 10.0)]), ARM_WRESTLING,
                             tmp_path / "aw.mp4")
    assert (written.frames, written.width, written.height, written.fps) == (280, 340, 256, 28.0)
    boxes = mp4_boxes(tmp_path / "aw.mp4")
    assert boxes[0] == "ftyp" and boxes.index("moov") < boxes.index("mdat"), boxes


def test_videos_joined_end_to_end_keep_each_clips_span(tmp_path):
    """report.joined (the long test video of test_segments): each clip's frames one after another, resized,
    and each clip's span in seconds where its frames landed."""
    from i3d.report.joined import join_videos

    first = write_smooth_video(tmp_path / "a.avi", count=25, width=160, height=120)  # 1 s
    second = write_smooth_video(tmp_path / "b.avi", count=50, width=640, height=480)  # 2 s
    spans = join_videos([first, second], tmp_path / "joined.mp4", size=(320, 240))
    assert spans == [(0.0, 1.0), (1.0, 3.0)]  # 25 then 50 frames at 25 fps
    frames, info = decode(tmp_path / "joined.mp4")
    assert len(frames) == 75 and {f.shape for f in frames} == {(240, 320, 3)} and info["rate"] == 25.0
    want = cv2.resize(smooth_frames(50, 640, 480)[0], (320, 240), interpolation=cv2.INTER_AREA)
    assert np.abs(frames[25].astype(int) - want).mean() < 6  # the second clip starts at frame 25


def test_a_segments_timeline_has_a_row_per_class_with_segments(tmp_path):
    """report.segment_chart: 1000 px wide, 90 + 70 px per class with a segment (the best-scoring first, at most
    12), or the 3 best-scoring classes when none has one."""
    from PIL import Image

    from i3d.report.segment_chart import plot_segments
    from i3d.results import Segment

    times = np.arange(100) / 25.0
    scores = np.random.default_rng(0).uniform(0, 0.2, (100, len(CATEGORIES)))
    segments = [Segment(CATEGORIES[5], 5, 0.4, 1.6, 0.7), Segment(CATEGORIES[9], 9, 2.0, 3.2, 0.9),
                Segment(CATEGORIES[5], 5, 3.3, 3.9, 0.6)]
    for found, rows in ((segments, 2), ([], 3)):
        path = plot_segments(times, scores, CATEGORIES, found, tmp_path / f"{rows}.png", title="t")
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (1000, 90 + 70 * rows)
