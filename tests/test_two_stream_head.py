"""i3d train --type both: a head per stream, fused as classify fuses (a stand-in flow set: DeepMind's flow weights
are not reachable offline).

It runs in a fresh process of its own, as test_tvl1's synthetic SIGINT test does: the suite's process crashed
(a segfault, no Python traceback) around that test, next to this one, which ended the whole suite; in a child
process a crash fails one test alone, with its exit code. (The cause was OpenVINO's CPU plugins leaving a freed
alternate signal stack in place, fixed by one OpenVINO Core per process: runtime/ov_core.)
"""

from __future__ import annotations

import numpy as np
import pytest
from support import SHARED

from i3d.heads import Head
from i3d.inputs.dataset_items import Dataset, ListOptions
from i3d.inputs.datasets import load_dataset
from i3d.preprocess.windows import VideoOptions
from i3d.tasks.recognizer import Recognizer
from i3d.tasks.training.splits import split_by_column
from i3d.tasks.training.train import train

FEWSHOT = SHARED / "fewshot"
LISTING = ListOptions(root=FEWSHOT / "clips", group_column="group", split_column="split")

pytestmark = pytest.mark.slow  # a fresh process, both streams' features of 9 videos

def test_two_streams_train_a_head_each_and_fuse_them_as_classify_does(tmp_path, shared_weights_dir, stand_in_flow):
    """--type both on a stand-in flow set (DeepMind's flow weights are not reachable offline): a head per stream,
    each the right shape, and the report's logits are the fused per-stream head logits classify gives."""
    from support import in_fresh_process

    in_fresh_process(two_streams, tmp_path, shared_weights_dir, stand_in_flow)


def two_streams(tmp_path, shared_weights_dir, stand_in_flow) -> None:
    from support import copy_rgb_cache, stand_in_flow_copy

    from i3d.weights.store import WeightStore

    store = WeightStore(tmp_path / "weights")
    copy_rgb_cache(shared_weights_dir, store.root)
    flow = stand_in_flow_copy(stand_in_flow, store.root)
    train_set, val_set = split_by_column(load_dataset(FEWSHOT / "labels.tsv", LISTING))
    classes = sorted({item.label for item in train_set.items})[:3]

    def few(dataset: Dataset, count: int) -> Dataset:
        return Dataset(tuple(item for label in classes for item in
                             [i for i in dataset.items if i.label == label][:count]), (), dataset.root, dataset.layout)

    # a flow cache: the video checked below three times has its flow computed once, in training (the cache keeps
    # the float32 result as computed, and is not among the settings a head records)
    short = VideoOptions(window=16, max_frames=16, flow_cache=tmp_path / "flow-cache")
    both = Recognizer.load(("rgb", "flow"), store=store, weight_sets={"flow": flow})
    head, report = train(few(train_set, 2), tmp_path / "head", both, video=short, val_set=few(val_set, 1))
    assert list(head.streams) == ["rgb", "flow"] and head.classes == tuple(classes)
    assert {s: h.weight.shape for s, h in head.streams.items()} == {"rgb": (3, 1024), "flow": (3, 1024)}
    assert head.weight_sets["flow"]["index_sha256"] == flow.index_sha256
    again = Head.load(tmp_path / "head")
    tuned = Recognizer(both.runners, both.weight_sets, both.backend, both.engine, again)
    row = report["videos"][0]
    result = tuned.classify(FEWSHOT / "clips" / row["key"], video=short, top_k=3)
    np.testing.assert_allclose(result.logits, row["logits"], atol=1e-4)
    assert result.categories == tuple(classes)
    # worked out by hand from each stream's features: standardise, the linear layer, then the streams' mean (sum)
    features = both.features(FEWSHOT / "clips" / row["key"], video=short).features
    by_hand = {}
    for stream in ("rgb", "flow"):
        part = again.streams[stream]
        x = (features[stream][0].astype(np.float64) - part.mean) / part.scale
        by_hand[stream] = x @ part.weight.T.astype(np.float64) + part.bias
    np.testing.assert_allclose(result.logits, (by_hand["rgb"] + by_hand["flow"]) / 2, atol=1e-4)
    summed = tuned.classify(FEWSHOT / "clips" / row["key"], video=short, top_k=3, fusion="sum")
    np.testing.assert_allclose(summed.logits, by_hand["rgb"] + by_hand["flow"], atol=1e-4)
    assert not np.allclose(by_hand["rgb"], by_hand["flow"], atol=1e-3)  # two streams, really
