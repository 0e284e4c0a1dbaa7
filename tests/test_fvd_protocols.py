"""FVD protocols: each implementation's resize, clip sampling and value handling, the input checks, prefixes."""

from __future__ import annotations

import json
import warnings

import cv2
import numpy as np
import pytest
from support import run_cli

import i3d
from i3d.preprocess.resize_ops import resize_bilinear_half_pixel, resize_short_side_centre_crop, short_side_size
from i3d.tasks.fvd.protocols import PROTOCOLS, ClipRule, get_protocol, protocol_settings
from i3d.tasks.fvd.input_checks import warn_mismatched_sides
from i3d.tasks.fvd.sampling import side_clips
from i3d.tasks.fvd.sides import open_side_videos
from i3d.tasks.fvd.stats import VideoStats, fvd_settings
from i3d.inputs.video_sets import VideoSet
from i3d.weights.sets import get_weight_set

NOWHERE = i3d.WeightStore(__import__("pathlib").Path("/nonexistent"))
"""A store holding no weights: a run that reaches the network fails, so refusals are known to come first."""


def videos(count: int, frames: int, height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, frames, height, width, 3), dtype=np.uint8)


# --- resizes -------------------------------------------------------------------------------------------------------

def test_half_pixel_bilinear_by_hand():
    """2x2 -> 3x3: sources at (i + 0.5) * 2/3 - 0.5 = -1/6 (clamped to 0), 1/2, 7/6 (upper neighbour clamped);
    4 -> 2 (no antialias): sources at 1/2 and 5/2, the mean of each pair."""
    square = np.array([[0, 3], [6, 9]], np.float32)[..., None]
    assert np.array_equal(resize_bilinear_half_pixel(square, 3, 3)[..., 0],
                          [[0, 1.5, 3], [3, 4.5, 6], [6, 7.5, 9]])
    row = np.array([[0, 2, 4, 6]], np.float32)[..., None]
    assert np.array_equal(resize_bilinear_half_pixel(row, 1, 2)[..., 0], [[1, 5]])


@pytest.mark.parametrize("size", [(2, 2, 3, 3), (48, 64, 224, 224), (300, 224, 224, 224), (7, 500, 224, 224),
                                  (240, 320, 224, 299), (1, 1, 4, 4)])
def test_half_pixel_bilinear_equals_opencv_inter_linear_on_floats(size):
    """OpenCV's INTER_LINEAR samples float input with half-pixel centres too, without antialiasing."""
    height, width, out_h, out_w = size
    frame = np.random.default_rng(height).uniform(0, 255, (height, width, 3)).astype(np.float32)
    ours = resize_bilinear_half_pixel(frame, out_h, out_w)
    theirs = cv2.resize(frame, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-2  # float32 weights computed in another order: measured 6.3e-3


def test_short_side_then_centre_crop():
    """VideoGPT: 240x320 -> short side 224, long side ceil(320 * 224/240) = 299, columns 37..260 kept."""
    assert short_side_size(240, 320, 224) == (224, 299) and short_side_size(320, 240, 224) == (299, 224)
    frames = np.random.default_rng(1).uniform(0, 1, (2, 240, 320, 3)).astype(np.float32)
    cropped = resize_short_side_centre_crop(frames, 224)
    assert cropped.shape == (2, 224, 224, 3)
    assert np.array_equal(cropped, resize_bilinear_half_pixel(frames, 224, 299)[:, :, 37:261])
    theirs = cv2.resize(frames[0], (299, 224), interpolation=cv2.INTER_LINEAR)[:, 37:261]
    assert np.abs(cropped[0] - theirs).max() < 1e-4


def test_tfhub_input_is_tensorflow_resize_bilinear():
    import tensorflow as tf

    frames = videos(1, 3, 48, 80)[0]
    resized = tf.compat.v1.image.resize_bilinear(frames, (224, 224), align_corners=False).numpy()
    expected = resized * np.float32(2 / 255) - np.float32(1)  # the reference graph's folded 2x/255 - 1
    ours = get_protocol("tfhub").model_input(frames)
    assert np.array_equal(ours.view(np.uint32), expected.view(np.uint32))


def test_each_protocol_hands_the_network_its_range():
    frames = np.zeros((2, 30, 40, 3), np.uint8)
    frames[1] = 255
    for name, (low, high) in (("tfhub", (-1, 1)), ("styleganv", (-1, 1)), ("videogpt", (-0.5, 0.5)),
                              ("cdfvd", (-1, 1))):
        clip = get_protocol(name).model_input(frames)
        assert clip.shape == (2, 224, 224, 3) and clip.dtype == np.float32
        assert np.allclose(clip[0], low) and np.allclose(clip[1], high), name


# --- clip sampling -------------------------------------------------------------------------------------------------

def test_clip_sampling_picks_the_frames_their_code_picks():
    """StyleGAN-V: random.randint(0, L - n*s + s - 1) per real video, generated from frame 0; content-debiased-fvd
    and VideoGPT: a window start in 0..L - n*s; Python's random.Random(seed), one draw per video in order."""
    forty = VideoSet("a", array=np.broadcast_to(np.uint8(0), (3, 40, 2, 2, 3)))
    stylegan = get_protocol("styleganv")
    picked = side_clips(forty, stylegan.real_clips, 16, seed=0)
    assert [int(p[0]) for p in picked] == [12, 24, 13]  # random.Random(0).randint(0, 24) three times
    assert np.array_equal(picked[1], np.arange(24, 40))  # the bound reaches the last frame, not past it
    assert side_clips(forty, stylegan.generated_clips, 16, seed=0) is None  # the first 16: nothing drawn
    long = VideoSet("b", array=np.broadcast_to(np.uint8(0), (3, 140, 2, 2, 3)))
    every8 = side_clips(long, ClipRule("random", 8, "stylegan-v"), 16, seed=0)  # fvd2048_128f_subsample8f
    assert [int(p[0]) for p in every8] == [12, 13, 1] and np.array_equal(every8[0], 12 + 8 * np.arange(16))
    twenty = VideoSet("c", array=np.broadcast_to(np.uint8(0), (3, 20, 2, 2, 3)))
    cdfvd = get_protocol("cdfvd")
    assert [int(p[0]) for p in side_clips(twenty, cdfvd.real_clips, 16, cdfvd.seed)] == [0, 0, 2]  # seed 42
    assert [int(p[0]) for p in side_clips(twenty, get_protocol("videogpt").real_clips, 16, 0)] == [3, 3, 0]
    short = VideoSet("d", array=np.broadcast_to(np.uint8(0), (1, 15, 2, 2, 3)))
    with pytest.raises(i3d.InputError, match="video 1 has 15 frames; 16 frames every 1 need 16"):
        side_clips(short, cdfvd.real_clips, 16, 0)


# --- input checks --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values, message", [
    (np.full((2, 16, 8, 8, 3), 0.5, np.float32), "dtype float32 videos need their value range stated .* look like 0,1"),
    (np.full((2, 16, 8, 8, 3), -0.5, np.float32), "look like -1,1"),
    (np.full((2, 16, 8, 8, 3), 200.0), "dtype float64 .* look like 0,255"),
])
def test_float_videos_without_a_range_are_refused_naming_what_they_look_like(values, message):
    with pytest.raises(i3d.InputError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        i3d.fvd(videos(2, 16), values, store=NOWHERE)


def test_float_videos_outside_their_stated_range_are_refused():
    values = np.linspace(-1, 1, 2 * 16 * 8 * 8 * 3, dtype=np.float32).reshape(2, 16, 8, 8, 3)
    with pytest.raises(i3d.InputError, match="values -1 to 1 leave the stated range 0,1; they look like -1,1"):
        i3d.fvd(videos(2, 16), values, i3d.FVDOptions(value_range="0,1"), store=NOWHERE)
    with pytest.raises(i3d.OptionError, match="value_range must be one of"):
        i3d.fvd(videos(2, 16), values, i3d.FVDOptions(value_range="0,2"), store=NOWHERE)


def test_floats_become_uint8_by_each_protocols_rule():
    """0.5 in [0, 1] is 127.5: StyleGAN-V rounds to 128, VideoGPT and content-debiased-fvd truncate to 127, the
    reference's graph takes the float itself; -1 and 1 in [-1, 1] are 0 and 255 everywhere."""
    from i3d.tasks.fvd.input_checks import float_videos

    half = np.full((1, 1, 1, 1, 3), 0.5, np.float32)
    assert float_videos(half, "0,1", "round", "x").ravel()[0] == 128
    assert float_videos(half, "0,1", "truncate", "x").ravel()[0] == 127
    kept = float_videos(half, "0,1", "none", "x")
    assert kept.dtype == np.float32 and kept.ravel()[0] == 127.5
    ends = np.array([-1.0, 0.0, 1.0], np.float32).reshape(1, 1, 1, 3, 1).repeat(3, -1)
    assert float_videos(ends, "-1,1", "round", "x")[..., 0].ravel().tolist() == [0, 128, 255]
    assert float_videos(ends, "-1,1", "truncate", "x")[..., 0].ravel().tolist() == [0, 127, 255]
    assert float_videos(np.full((1, 1, 1, 1, 3), 254.7), "0,255", "truncate", "x").ravel()[0] == 254


def test_uint8_videos_of_only_0_and_1_are_refused_but_black_ones_are_not():
    unit = (videos(2, 16) > 127).astype(np.uint8)  # a [0, 1] video cast without scaling
    with pytest.raises(i3d.InputError, match="values are only 0 and 1: .* multiply by 255"):
        i3d.fvd(videos(2, 16), unit, store=NOWHERE)
    black = open_side_videos(np.zeros((2, 16, 8, 8, 3), np.uint8), "generated", 16, get_protocol("tfhub"), None)
    assert len(black) == 2  # all black (the reference's own example): taken


def test_sides_of_other_sizes_and_too_few_videos_warn():
    videogpt = get_protocol("videogpt")
    with pytest.warns(UserWarning, match="the real side has 3 videos; protocol videogpt uses 256"):
        real = open_side_videos(videos(3, 16, 24, 32), "real", 16, videogpt, None)
    many = open_side_videos(videos(300, 16, 4, 4), "generated", 16, videogpt, None)
    assert len(many) == 256  # the first 256, as VideoGPT's 256-video batch
    with pytest.warns(UserWarning, match="the real videos are 32x24 and the generated 4x4: protocol videogpt "
                                         "scales the short side to 224"):
        warn_mismatched_sides(real, many, "videogpt", videogpt.resize)


# --- statistics ----------------------------------------------------------------------------------------------------

def test_reference_settings_are_unchanged_and_other_protocols_record_theirs():
    ws = get_weight_set("rgb", "kinetics")
    assert protocol_settings(get_protocol("tfhub"), 16, ws) == fvd_settings(16, ws)  # saved statistics still load
    stylegan = protocol_settings(get_protocol("styleganv"), 16, ws)
    assert stylegan["protocol"] == "styleganv" and stylegan["covariance"] == "N"
    assert stylegan["clips"] == "real random-start-stylegan-v, generated first"
    assert {p.name for p in PROTOCOLS.values()} == {"tfhub", "styleganv", "videogpt", "cdfvd"}
    with pytest.raises(i3d.OptionError, match="protocol must be one of tfhub, styleganv, videogpt, cdfvd"):
        i3d.fvd(videos(2, 16), videos(2, 16), i3d.FVDOptions(protocol="latte"))


def test_statistics_from_another_protocol_are_refused_in_one_line(tmp_path, shared_weights_dir):
    ws = get_weight_set("rgb", "kinetics")
    x = np.random.default_rng(0).normal(size=(50, 400))
    stats = VideoStats(x.mean(0), np.cov(x, rowvar=False), 50, protocol_settings(get_protocol("styleganv"), 16, ws),
                       "openvino")
    stats.save(tmp_path / "stylegan.npz")
    np.save(tmp_path / "generated.npy", videos(2, 16))
    np.save(tmp_path / "unit.npy", (videos(2, 16) > 127).astype(np.uint8))
    np.save(tmp_path / "floats.npy", np.full((2, 16, 8, 8, 3), 0.5, np.float32))
    for args, text in (((str(tmp_path / "stylegan.npz"), str(tmp_path / "generated.npy")),
                        "statistics made under protocol styleganv (this run: tfhub)"),
                       ((str(tmp_path / "generated.npy"), str(tmp_path / "unit.npy")), "values are only 0 and 1"),
                       ((str(tmp_path / "generated.npy"), str(tmp_path / "floats.npy")), "look like 0,1")):
        done = run_cli("fvd", *args, "--offline", weights_dir=shared_weights_dir, module="i3d")
        lines = [line for line in done.stderr.strip().splitlines() if not line.startswith("warning:")]
        assert done.returncode == 3, done.stderr
        assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], done.stderr


# --- the network: protocols end to end, prefixes -------------------------------------------------------------------

def test_videogpt_embeddings_are_its_preprocessing_through_the_network(recognizer):
    """Random windows (seed 0: starts 3 and 3 of 20 frames), /255, short side to 224 and a centre crop (OpenCV's
    INTER_LINEAR here), -0.5: the network's logits averaged over time equal ours."""
    clips = videos(2, 20, 30, 40, seed=5)
    ours = i3d.fvd_embeddings(clips, i3d.FVDOptions(protocol="videogpt", batch_size=2), recognizer=recognizer)
    inputs = []
    for video, start in zip(clips, (3, 3)):
        unit = video[start:start + 16].astype(np.float32) / 255
        resized = np.stack([cv2.resize(frame, (299, 224), interpolation=cv2.INTER_LINEAR) for frame in unit])
        inputs.append(resized[:, :, 37:261] - 0.5)
    theirs = recognizer.runners["rgb"].outputs(np.stack(inputs))[0]
    assert np.abs(ours - theirs).max() < 1e-3  # resize rounding through the network; a wrong frame moves it by >0.1


@pytest.mark.slow  # three FVD runs (two from the cache) on two clip lengths
def test_prefixes_are_the_fvd_of_the_same_clips_first_frames(recognizer, tmp_path, monkeypatch):
    """One pass embeds 10 and 9 frames of each video; plain runs at --frames 9 and 10 then find every embedding in
    the cache under their own keys (the same content and settings) and give the same distances."""
    real, generated = videos(2, 10, seed=1), videos(2, 10, 20, 36, seed=2)
    runner, calls = recognizer.runners["rgb"], []
    outputs = runner.outputs
    monkeypatch.setattr(runner, "outputs", lambda clips: calls.append(clips.shape[:2]) or outputs(clips))
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        both = i3d.fvd(real, generated, i3d.FVDOptions(frames=10, prefixes=(9,), batch_size=2, cache_dir=cache),
                       recognizer=recognizer)
        assert sorted(calls) == [(2, 9), (2, 9), (2, 10), (2, 10)]  # each side decoded once, embedded twice
        calls.clear()
        nine = i3d.fvd(real[:, :9], generated[:, :9], i3d.FVDOptions(frames=9, cache_dir=cache), recognizer=recognizer)
        ten = i3d.fvd(real, generated, i3d.FVDOptions(frames=10, cache_dir=cache), recognizer=recognizer)
    assert calls == [] and nine.real.cached == ten.generated.cached == 2
    assert both.prefixes == {9: nine.distance} and both.distance == ten.distance != nine.distance
    assert both.protocol["name"] == "tfhub" and both.real.embedded == 2


@pytest.mark.slow  # a command process embedding two sides under two protocols
def test_command_records_the_protocol_and_shares_cache_only_for_equal_inputs(tmp_path, shared_weights_dir):
    np.save(tmp_path / "real.npy", videos(3, 16, seed=3))
    np.save(tmp_path / "gen.npy", (np.random.default_rng(4).uniform(0, 1, (3, 16, 24, 32, 3))).astype(np.float32))
    env = {"I3D_CACHE_DIR": str(tmp_path / "cache")}
    runs = {}
    for protocol in ("styleganv", "cdfvd"):
        done = run_cli("fvd", str(tmp_path / "real.npy"), str(tmp_path / "gen.npy"), "--protocol", protocol,
                       "--range", "0,1", "--format", "json", "--offline", weights_dir=shared_weights_dir,
                       module="i3d", env=env)
        assert done.returncode == 0, done.stderr
        runs[protocol] = json.loads(done.stdout)
    assert runs["styleganv"]["protocol"]["real_clips"] == "random-start-stylegan-v"
    assert runs["cdfvd"]["protocol"]["to_uint8"] == "truncate" and runs["cdfvd"]["settings"]["protocol"] == "cdfvd"
    # 16-frame videos: every window is the whole video, so both protocols feed the real side the same bytes
    assert runs["cdfvd"]["real"]["cached"] == 3
    # the generated floats: rounded by one, truncated by the other: other bytes, embedded again
    assert runs["cdfvd"]["generated"]["embedded"] == 3
    assert runs["styleganv"]["fvd"] != runs["cdfvd"]["fvd"]


def test_range_flag_takes_the_three_spellings_and_says_how_to_write_minus_one(capsys):
    """argparse reads ``-1,1`` after a space as a flag: ``--range=-1,1`` parses, and ``--range -1,1`` is
    refused with a line that gives that spelling (not argparse's "expected one argument")."""
    from i3d.commands.fvd import build_parser

    parser = build_parser()
    for given, expected in ((["--range=-1,1"], "-1,1"), (["--range", "0,1"], "0,1"), (["--range", "0,255"], "0,255"),
                            ([], None)):
        assert parser.parse_args(["real", "gen", *given]).value_range == expected
    for given, message in ((["--range", "-1,1"], "-1,1 written with '=' as --range=-1,1"),
                           (["--range"], "needs LOW,HIGH"),
                           (["--range", "0,2"], "invalid choice: '0,2'")):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["real", "gen", *given])
        error = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2 and len(error) == 1 and error[0].startswith("error: argument --range: ")
        assert message in error[0], error
