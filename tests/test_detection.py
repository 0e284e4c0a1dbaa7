"""Temporal detection AP/mAP as ActivityNet defines it, on cases worked by hand; segments cut from frame scores;
subtitles."""

from __future__ import annotations

import json

import numpy as np
import pytest

from i3d.errors import InputError, OptionError
from i3d.results import Segment, WindowSpan
from i3d.tasks.segments.evaluation import Span, average_precision, evaluate, interpolated_ap, read_truth, tiou
from i3d.tasks.segments.cut import FrameScores, SegmentOptions, find_segments, frame_scores, smoothed


def gt(video, label, start, end):
    return Span(video, label, start, end)


def test_tiou_by_hand():
    np.testing.assert_allclose(tiou(0, 6, np.array([0.0, 5.0, 10.0]), np.array([10.0, 15.0, 20.0])),
                               [0.6, 1 / 15, 0.0])


def test_interpolated_ap_makes_precision_monotone():
    # precision 1, 0.5, 0.667 at recall 0.5, 0.5, 1: the envelope is 1, 0.667, 0.667 -> 0.5 * 1 + 0.5 * 2/3
    assert interpolated_ap(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1.0])) == pytest.approx(5 / 6)


def test_ap_worked_by_hand():
    truth = [gt("v", "a", 0, 10), gt("v", "a", 20, 30)]
    predicted = [Span("v", "a", 0, 10, 0.9), Span("v", "a", 40, 50, 0.8), Span("v", "a", 20, 30, 0.7)]
    np.testing.assert_allclose(average_precision(truth, predicted), [5 / 6] * 5)
    # given in another order, ranked by score all the same
    np.testing.assert_allclose(average_precision(truth, predicted[::-1]), [5 / 6] * 5)


def test_ap_per_threshold():
    # tIoU 0.6: a true positive up to 0.6, a false positive at 0.7
    np.testing.assert_allclose(average_precision([gt("v", "a", 0, 10)], [Span("v", "a", 0, 6, 0.5)]),
                               [1, 1, 1, 1, 0])


def test_a_duplicate_is_a_false_positive():
    truth = [gt("v", "a", 0, 10)]
    np.testing.assert_allclose(average_precision(truth, [Span("v", "a", 0, 10, 0.9), Span("v", "a", 1, 10, 0.8)]),
                               [1.0] * 5)  # recall 1 reached at precision 1; the duplicate comes after
    # ranked first, the duplicate is the match and the better one is the false positive: still recall 1 at p=1
    np.testing.assert_allclose(average_precision(truth, [Span("v", "a", 1, 10, 0.9), Span("v", "a", 0, 10, 0.8)]),
                               [1.0, 1.0, 1.0, 1.0, 1.0])
    # a wrong one first: precision 0.5 at recall 1
    np.testing.assert_allclose(average_precision(truth, [Span("v", "a", 30, 40, 0.9), Span("v", "a", 0, 10, 0.8)]),
                               [0.5] * 5)


def test_equal_scores_keep_their_order():
    truth = [gt("v", "a", 0, 10)]
    wrong, right = Span("v", "a", 40, 50, 0.5), Span("v", "a", 0, 10, 0.5)
    np.testing.assert_allclose(average_precision(truth, [wrong, right]), [0.5] * 5)
    np.testing.assert_allclose(average_precision(truth, [right, wrong]), [1.0] * 5)


def test_a_prediction_matches_the_best_overlap_not_yet_taken():
    truth = [gt("v", "a", 0, 10), gt("v", "a", 6, 16)]
    # the first takes [0, 10] (tIoU 1); the second, [2, 12], overlaps [0, 10] best (8/12) but it is taken,
    # so it is matched to [6, 16] (6/14 = 0.43): a true positive at 0.3 and 0.4, a false one at 0.5
    predicted = [Span("v", "a", 0, 10, 0.9), Span("v", "a", 2, 12, 0.8)]
    np.testing.assert_allclose(average_precision(truth, predicted, (0.3, 0.4, 0.5)), [1.0, 1.0, 0.5])


def test_evaluate_leaves_out_what_cannot_be_scored_and_scores_the_rest():
    truth = [gt("v1", "a", 0, 10), gt("v1", "b", 10, 20), gt("v2", "a", 0, 5), gt("v3", "a", 0, 5),
             gt("v1", "b", 9, 3)]
    predicted = [Span("v1", "a", 0, 10, 0.9), Span("v1", "c", 0, 10, 0.8), Span("v2", "a", 5, 1, 0.7),
                 Span("v9", "a", 0, 5, 0.9)]
    result = evaluate(truth, predicted, videos=["v1", "v2", "v9"], truth_videos=["v1", "v2", "v3"])
    # scored: v1 and v2; class a: 1 of 2 true segments found first -> AP 0.5; class b: nothing found -> 0
    assert result.ap == {"a": {k: 0.5 for k in ("0.3", "0.4", "0.5", "0.6", "0.7")},
                         "b": {k: 0.0 for k in ("0.3", "0.4", "0.5", "0.6", "0.7")}}
    assert result.map == {"0.3": 0.25, "0.4": 0.25, "0.5": 0.25, "0.6": 0.25, "0.7": 0.25, "mean": 0.25}
    assert result.videos == 2 and result.ground_truth_segments == 3 and result.predicted_segments == 1
    text = "\n".join(result.left_out)
    assert "ground truth v1 'b' [9, 3]: ends before it starts" in text
    assert "result v2 'a' [5, 1]: ends before it starts" in text
    assert "result video v9: not in the ground truth" in text
    assert "ground-truth video v3: no results (not run)" in text
    assert "class 'c': 1 predicted segment(s) but no ground truth" in text
    assert len(result.left_out) == 5


def test_ground_truth_files(tmp_path):
    anet = tmp_path / "gt.json"
    anet.write_text(json.dumps({"database": {"x": {"annotations": [{"label": "a", "segment": [1, 2.5]}]},
                                             "y": {"annotations": []}}}))
    assert read_truth(anet) == ([Span("x", "a", 1.0, 2.5)], ["x", "y"])
    thumos = tmp_path / "thumos"
    thumos.mkdir()
    (thumos / "CleanAndJerk_test.txt").write_text("video_test_1  3.1 4.5\nvideo_test_2 0 1\n")
    (thumos / "Ambiguous_test.txt").write_text("video_test_1 0 9\n")
    spans, videos = read_truth(thumos)
    assert spans == [Span("video_test_1", "CleanAndJerk", 3.1, 4.5), Span("video_test_2", "CleanAndJerk", 0, 1)]
    assert videos == ["video_test_1", "video_test_2"]
    (thumos / "Bad_test.txt").write_text("video_test_3 zero 1\n")
    with pytest.raises(InputError, match=r"Bad_test.txt:1: expected 'video start end'"):
        read_truth(thumos)
    anet.write_text(json.dumps({"database": {"x": {"annotations": [{"label": "a", "segment": [1]}]}}}))
    with pytest.raises(InputError, match="'segment' must be \\[start, end\\]"):
        read_truth(anet)


def spans(*rows):
    return [WindowSpan(i, first, frames, first / 25, (first + frames) / 25) for i, (first, frames) in enumerate(rows)]


def test_frame_scores_are_the_mean_of_the_windows_covering_each_frame():
    logits = np.log(np.array([[0.8, 0.2], [0.4, 0.6]]))
    scores = frame_scores(spans((0, 4), (2, 4)), logits, 25.0)
    np.testing.assert_allclose(scores.scores[:, 0], [0.8, 0.8, 0.6, 0.6, 0.4, 0.4], rtol=1e-6)
    np.testing.assert_allclose(scores.times, np.arange(6) / 25)
    assert scores.end == pytest.approx(6 / 25)


def test_hysteresis_merge_and_minimum_duration():
    fps = 10.0
    curve = np.zeros(100)
    curve[10:30] = 0.2  # never reaches the threshold: no segment
    curve[40:60] = 0.2
    curve[45:50] = 0.6  # reaches it: the whole run above release, 40..60
    curve[65:70] = 0.6  # 0.5 s later: merged with the one before (gap under 1 s)
    curve[90:94] = 0.9  # 0.4 s: shorter than min_duration
    scores = FrameScores(np.arange(100) / fps, np.stack([curve, 1 - curve], axis=1).astype(np.float32), fps)
    found = find_segments(scores, ("x", "y"), SegmentOptions(threshold=0.5, release=0.15, smooth=0,
                                                            min_duration=0.5, merge_gap=1.0, classes=("x",)))
    assert [(s.label, s.start, s.end) for s in found] == [("x", 4.0, 7.0)]
    assert found[0].score == pytest.approx(np.mean(curve[40:70]), rel=1e-6)
    with pytest.raises(OptionError, match="classes names 'z'"):
        find_segments(scores, ("x", "y"), SegmentOptions(classes=("z",)))
    with pytest.raises(OptionError, match="release is 0.6"):
        SegmentOptions(threshold=0.5, release=0.6).check()


def test_smoothing_is_a_centred_moving_average():
    scores = FrameScores(np.arange(5) / 1.0, np.array([[0], [0], [3], [0], [0]], np.float32), 1.0)
    np.testing.assert_allclose(smoothed(scores, 3.0)[:, 0], [0, 1, 1, 1, 0])


def test_subtitles_and_csv():
    from i3d.report.subtitles import segments_csv, srt, webvtt

    found = [Segment("tai chi", 5, 3661.5, 3700.25, 0.9), Segment("knitting", 1, 0.0, 9.76, 0.834)]
    assert srt(found) == ("1\n00:00:00,000 --> 00:00:09,760\nknitting (83%)\n\n"
                          "2\n01:01:01,500 --> 01:01:40,250\ntai chi (90%)\n")
    assert webvtt(found) == ("WEBVTT\n\n00:00:00.000 --> 00:00:09.760\nknitting (83%)\n\n"
                             "01:01:01.500 --> 01:01:40.250\ntai chi (90%)\n")
    assert segments_csv(found, "long").splitlines() == [
        "video,label,class_index,start,end,duration,score", "long,knitting,1,0.000,9.760,9.760,0.834000",
        "long,tai chi,5,3661.500,3700.250,38.750,0.900000"]
