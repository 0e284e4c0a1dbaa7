"""Deletion/insertion curves and the pointing game, on stand-in networks whose answers are known by construction."""

from __future__ import annotations

import numpy as np
import pytest

from i3d.errors import OptionError
from i3d.tasks.explain.faithfulness import (CurveOptions, area_under, blanked, cell_grid, cell_scores, centre_order,
                                            clip_fill, curves, random_order, saliency_order)
from i3d.tasks.explain.pointing import (Point, composite, pairings, point, quadrant_box, quadrant_shares, rates,
                                        shrink_half)

SHAPE = (8, 32, 32)  # frames, rows, columns
CELL = (2, 8, 8)  # a 4 x 4 x 4 grid of 64 cells
BOX = (slice(None), slice(0, 16), slice(0, 16))  # every frame's top-left 16x16: 16 cells, a quarter


def _clip(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, SHAPE + (3,)).astype(np.float32)


def _box_predictor(original: np.ndarray, calls: list[int] | None = None):
    """A network that looks only at BOX: class 1's probability is the share of the box's voxels left as they were."""

    def predict(clips: np.ndarray) -> np.ndarray:
        if calls is not None:
            calls.append(len(clips))
        same = np.all(clips[(slice(None),) + BOX] == original[BOX], axis=-1).mean(axis=(1, 2, 3))
        return np.stack([1 - same, same], axis=1)

    return predict


def _box_map() -> np.ndarray:
    heat = np.zeros(SHAPE)
    heat[BOX] = 1.0
    return heat


OPTIONS = CurveOptions(steps=4, cell=CELL, batch=3)


def test_area_under_is_the_trapezoid_area():
    assert area_under([0, 0.5, 1], [1, 0.5, 0]) == pytest.approx(0.5)
    assert area_under([0, 0.25, 1], [0, 1, 1]) == pytest.approx(0.125 + 0.75)


def test_the_true_map_beats_random_and_centre_on_a_network_that_looks_at_one_box():
    clip = _clip()
    grid = cell_grid(SHAPE, CELL)
    orders = {"true": saliency_order(_box_map(), SHAPE, CELL), "random": random_order(grid, seed=0),
              "centre": centre_order(grid)}
    result = curves(_box_predictor(clip), clip[np.newaxis], orders, 1, OPTIONS)
    np.testing.assert_allclose(result["true"].deletion.fractions, [0, 0.25, 0.5, 0.75, 1])
    # the box's 16 cells go first: gone after the first quarter, back after the first quarter
    np.testing.assert_allclose(result["true"].deletion.probabilities, [1, 0, 0, 0, 0])
    np.testing.assert_allclose(result["true"].insertion.probabilities, [0, 1, 1, 1, 1])
    assert result["true"].deletion.auc == pytest.approx(0.125)
    assert result["true"].insertion.auc == pytest.approx(0.875)
    # centre-first takes the 4 central columns of cells (1 of them in the box) at every time, then the 8 edge
    # middles at times 1 and 2 (2 in the box), then at times 0 and 3: a quarter of the box per quarter
    np.testing.assert_allclose(result["centre"].deletion.probabilities, [1, 0.75, 0.5, 0.25, 0])
    np.testing.assert_allclose(result["centre"].insertion.probabilities, [0, 0.25, 0.5, 0.75, 1])
    assert 0.3 < result["random"].deletion.auc < 0.7
    for baseline in ("random", "centre"):
        assert result["true"].deletion.auc < result[baseline].deletion.auc
        assert result["true"].insertion.auc > result[baseline].insertion.auc


def test_curves_call_the_network_in_batches_and_share_the_ends():
    clip = _clip(1)
    calls: list[int] = []
    grid = cell_grid(SHAPE, CELL)
    curves(_box_predictor(clip, calls), clip, {"a": random_order(grid, 1), "b": centre_order(grid)}, 1, OPTIONS)
    assert max(calls) <= OPTIONS.batch
    assert sum(calls) == 2 + 2 * 2 * (OPTIONS.steps - 1)  # the clip and the blank once; 3 inner points x 2 x 2


def test_blanked_cells_hold_the_clips_mean_colour_and_the_rest_is_untouched():
    clip = _clip(2)
    mean = clip.reshape(-1, 3).astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(clip_fill(clip), mean, rtol=1e-6)
    grid = cell_grid(SHAPE, CELL)
    first = np.ravel_multi_index((1, 2, 3), grid)  # frames 2-3, rows 16-23, columns 24-31
    out = blanked(clip, np.array([first]), CELL)
    region = (slice(2, 4), slice(16, 24), slice(24, 32))
    np.testing.assert_allclose(out[region], np.broadcast_to(clip_fill(clip), (2, 8, 8, 3)))
    rest = np.ones(SHAPE, dtype=bool)
    rest[region] = False
    np.testing.assert_array_equal(out[rest], clip[rest])
    kept = blanked(clip, np.array([first]), CELL, keep=True)
    np.testing.assert_array_equal(kept[region], clip[region])
    assert np.all(kept[rest] == clip_fill(clip))


def test_a_full_resolution_map_is_averaged_over_each_cell_even_a_partial_one():
    heat = np.random.default_rng(3).uniform(0, 1, (7, 30, 30))
    scores = cell_scores(heat, (7, 30, 30), CELL)
    assert scores.shape == (4, 4, 4)
    assert scores[0, 0, 0] == pytest.approx(heat[0:2, 0:8, 0:8].mean())
    assert scores[3, 3, 3] == pytest.approx(heat[6:7, 24:30, 24:30].mean())
    assert scores[1, 2, 3] == pytest.approx(heat[2:4, 16:24, 24:30].mean())


def test_a_coarse_map_is_read_at_the_cells_centres():
    same = np.random.default_rng(4).uniform(0, 1, (4, 4, 4))  # one sample per cell: read as it is
    np.testing.assert_allclose(cell_scores(same, SHAPE, CELL), same)
    coarse = np.zeros((2, 2, 2))
    coarse[:, 0, 0] = 1.0
    # cell centres 4, 12, 20, 28 px of 32 fall at -0.25, 0.25, 0.75, 1.25 of the 2 samples: 1, 0.75, 0.25, 0
    along = np.array([1, 0.75, 0.25, 0])
    expected = np.broadcast_to(np.outer(along, along), (4, 4, 4))
    np.testing.assert_allclose(cell_scores(coarse, SHAPE, CELL), expected)
    assert saliency_order(coarse, SHAPE, CELL)[0] == 0


def test_centre_order_goes_from_the_middle_out_and_random_is_a_seeded_permutation():
    grid = (3, 4, 4)
    order = centre_order(grid)
    t, y, x = np.unravel_index(order, grid)
    assert set(zip(t[:4].tolist(), y[:4].tolist(), x[:4].tolist())) == {(1, 1, 1), (1, 1, 2), (1, 2, 1), (1, 2, 2)}
    assert {(int(a), int(b)) for a, b in zip(y[-6:], x[-6:])} <= {(0, 0), (0, 3), (3, 0), (3, 3)}
    assert sorted(order.tolist()) == list(range(48))
    np.testing.assert_array_equal(random_order(grid, 5), random_order(grid, 5))
    assert not np.array_equal(random_order(grid, 5), random_order(grid, 6))


def test_curve_options_are_checked():
    for bad in (CurveOptions(steps=0), CurveOptions(cell=(0, 8, 8)), CurveOptions(batch=0)):
        with pytest.raises(OptionError):
            bad.check()
    clip = _clip()
    with pytest.raises(ValueError, match="permutation"):
        curves(_box_predictor(clip), clip, {"short": np.arange(10)}, 1, OPTIONS)


def test_quadrant_boxes_tile_the_frame():
    assert quadrant_box(0) == (0, 112, 0, 112)
    assert quadrant_box(1) == (0, 112, 112, 224)
    assert quadrant_box(2) == (112, 224, 0, 112)
    assert quadrant_box(3) == (112, 224, 112, 224)
    with pytest.raises(OptionError):
        quadrant_box(4)


def test_a_composite_is_the_shrunk_clip_in_its_quadrant_over_a_frozen_frame():
    rng = np.random.default_rng(5)
    inner = rng.uniform(-1, 1, (5, 8, 8, 3)).astype(np.float32)
    background = rng.uniform(-1, 1, (5, 8, 8, 3)).astype(np.float32)
    out = composite(inner, background, quadrant=2)
    assert out.shape == inner.shape
    for t in range(5):
        for r in range(4):
            for c in range(4):
                block = inner[t, 2 * r:2 * r + 2, 2 * c:2 * c + 2].astype(np.float64).mean(axis=(0, 1))
                np.testing.assert_allclose(out[t, 4 + r, c], block, rtol=1e-6)
    outside = np.ones((8, 8), dtype=bool)
    outside[4:, :4] = False
    for t in range(5):
        np.testing.assert_array_equal(out[t][outside], background[2][outside])
    np.testing.assert_array_equal(composite(inner, background, 0, frame=4)[3, :, 4:], background[4, :, 4:])
    assert shrink_half(inner).shape == (5, 4, 4, 3)


def test_a_peak_points_at_the_quadrant_its_cell_lies_mostly_in():
    heat = np.zeros((7, 7))
    heat[1, 5] = 1.0
    assert [point(heat, q).peak for q in range(4)] == [False, True, False, False]
    heat = np.zeros((2, 7, 7))
    heat[1, 3, 3] = 1.0  # the centre cell is a quarter in each quadrant: no quadrant
    assert not any(point(heat, q).peak for q in range(4))
    heat = np.zeros((14, 14))
    heat[[2, 11], [2, 11]] = 1.0  # a tie between two quadrants points at neither
    assert not point(heat, 0).peak and not point(heat, 3).peak
    assert not point(np.zeros((7, 7)), 0).peak


def test_mass_shares_follow_the_cells_areas():
    np.testing.assert_allclose(quadrant_shares(np.ones((7, 7))), [0.25] * 4)
    heat = np.zeros((7, 7))
    heat[3, 0] = 2.0  # the middle row's first cell: half top left, half bottom left
    np.testing.assert_allclose(quadrant_shares(heat), [0.5, 0, 0.5, 0])
    full = np.zeros((3, 224, 224))
    full[:, 150:200, 120:140] = 1.0
    full[:, 10:20, 10:20] = -5.0  # negative evidence is not heat
    np.testing.assert_allclose(quadrant_shares(full), [0, 0, 0, 1])
    scored = point(full, 3)
    assert scored.peak and scored.most and scored.mass == pytest.approx(1.0)
    assert point(np.zeros((7, 7)), 1).mass == 0.0


def test_pairings_paste_every_clip_once_on_another_and_use_the_quadrants_alike():
    plan = pairings(8, seed=3)
    assert sorted(inner for inner, _, _ in plan) == list(range(8))
    assert all(inner != background for inner, background, _ in plan)
    assert [sum(q == k for _, _, q in plan) for k in range(4)] == [2, 2, 2, 2]
    with pytest.raises(OptionError):
        pairings(1)


def test_rates_count_peaks_and_majorities():
    points = [Point(0, True, 0.9), Point(1, True, 0.4), Point(2, False, 0.6), Point(3, False, 0.1)]
    assert rates(points) == {"peak": 0.5, "mass": 0.5, "count": 4}


def test_the_curves_blank_a_cell_as_occlusion_hides_its_patch():
    from i3d.tasks.explain.occlusion import occlusion_map

    clip = np.random.default_rng(6).uniform(-1, 1, (1, 2, 224, 224, 3)).astype(np.float32)
    sent: list[np.ndarray] = []

    def probabilities(clips: np.ndarray) -> np.ndarray:
        sent.extend(clips)
        return np.full((len(clips), 2), 0.5)

    patch = (2, 112, 112)  # one time step, 2 x 2 in space: 4 hidden clips after the whole one
    occlusion_map(probabilities, clip, 1, patch=patch, batch=4)
    assert len(sent) == 5
    for cell in range(4):
        np.testing.assert_allclose(blanked(clip, np.array([cell]), patch), sent[1 + cell], atol=1e-6)
