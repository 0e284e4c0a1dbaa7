"""The preview contact sheet shows the model's input: RGB as pixels, flow direction as hue."""

import numpy as np

from i3d.report.preview import contact_sheet


def test_contact_sheet_layout_and_colours():
    rgb = np.full((1, 10, 224, 224, 3), -1.0, np.float32)
    rgb[..., 1] = 1.0  # pure green
    flow = np.zeros((1, 9, 224, 224, 2), np.float32)
    flow[..., 0] = 0.5  # everything moves right
    flow[0, :, :, :112, 1] = 0.5  # left half also moves down (y grows downwards)
    sheet = contact_sheet({"rgb": rgb, "flow": flow}, columns=6, tile=112)
    assert sheet.shape == (224, 672, 3) and sheet.dtype == np.uint8
    assert sheet[:112].reshape(-1, 3).mean(axis=0).round().tolist() == [0, 255, 0]
    right_half = sheet[112 + 40, 112 - 20]  # first flow tile, right side: pure rightward motion -> red
    assert right_half[0] == 180 and right_half[1] < 20 and right_half[2] < 20  # speed 0.5 of 0.71: dimmer
    left_half = sheet[112 + 40, 20]  # down-right at 45 degrees -> hue 45: orange-yellow
    assert left_half[0] > 200 and 100 < left_half[1] < 230 and left_half[2] < 60
    assert contact_sheet({"rgb": rgb}).shape == (112, 672, 3)
