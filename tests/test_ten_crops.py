"""Ten-crop views: geometry, mirrored flow, clip layout, features per view and averaged logits."""

from __future__ import annotations

import numpy as np
import pytest
from support import write_video

from i3d.errors import OptionError
from i3d import transforms
from i3d.preprocess.windows import VideoOptions
from i3d.streams import FLOW, RGB


def test_ten_crops_are_corners_centre_and_mirrors():
    frame = np.arange(256 * 300 * 3, dtype=np.int64).reshape(256, 300, 3)
    views = transforms.ten_crops(frame)
    assert views.shape == (10, 224, 224, 3)
    np.testing.assert_array_equal(views[0], frame[:224, :224])
    np.testing.assert_array_equal(views[1], frame[:224, 76:])
    np.testing.assert_array_equal(views[2], frame[32:, :224])
    np.testing.assert_array_equal(views[3], frame[32:, 76:])
    np.testing.assert_array_equal(views[4], transforms.center_crop(frame))
    for i in range(5):
        np.testing.assert_array_equal(views[5 + i], views[i][:, ::-1])


def test_mirrored_flow_moves_the_other_way():
    flow = np.random.default_rng(0).uniform(-1, 1, (256, 256, 2)).astype(np.float32)
    views = transforms.crop_flow(flow, "ten")
    np.testing.assert_array_equal(views[4], transforms.crop_flow(flow, "center"))
    np.testing.assert_array_equal(views[9, ..., 0], -views[4][:, ::-1, 0])
    np.testing.assert_array_equal(views[9, ..., 1], views[4][:, ::-1, 1])


def test_clips_of_ten_views_put_the_views_first():
    frames = [np.full((10, 224, 224, 3), i, np.uint8) for i in range(9)]
    clip = RGB.clip(frames)
    assert clip.shape == (10, 9, 224, 224, 3) and clip.dtype == np.float32
    assert clip[3, 7, 0, 0, 0] == np.float32(7 / 255 * 2 - 1)
    assert FLOW.clip([np.zeros((10, 224, 224, 2), np.float32)] * 9).shape == (10, 9, 224, 224, 2)


def test_ten_crop_features_keep_every_view_and_logits_average_them(tmp_path, recognizer):
    video = write_video(tmp_path / "v.avi", 12, width=320, height=256)
    ten = recognizer.features(video, video=VideoOptions(crop="ten"), logits=True)
    centre = recognizer.features(video, video=VideoOptions(crop="center"), logits=True)
    assert ten.features["rgb"].shape == (1, 10, 1024) and ten.logits["rgb"].shape == (1, 10, 400)
    np.testing.assert_allclose(ten.features["rgb"][0, 4], centre.features["rgb"][0], atol=1e-4)
    assert np.abs(ten.features["rgb"][0, 0] - ten.features["rgb"][0, 4]).max() > 1e-3  # a corner differs
    result = recognizer.classify(video, video=VideoOptions(crop="ten"))
    np.testing.assert_allclose(result.logits, ten.logits["rgb"][0].mean(axis=0), atol=1e-4)


def test_preprocess_refuses_ten_views(tmp_path):
    from i3d.report.npy import save_clips
    from i3d.streams import streams_named

    video = write_video(tmp_path / "v.avi", 12)
    with pytest.raises(OptionError, match="several views"):
        save_clips(video, streams_named("rgb"), VideoOptions(crop="ten"), {"rgb": tmp_path / "v_rgb.npy"})
    assert not (tmp_path / "v_rgb.npy").exists()
