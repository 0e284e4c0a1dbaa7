"""evaluate.py end to end: the sample, JSON output, fusion, and every kind of bad input."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from support import copy_rgb_cache, run_cli, stand_in_flow_copy

from i3d.results import fuse_logits, softmax, top_k


@pytest.fixture(scope="module")
def cricket_rgb_result(cricket_clips, shared_weights_dir):
    """The README's command as a user runs it: the script in a fresh interpreter."""
    proc = run_cli("--rgb", str(cricket_clips["rgb"]), "--format", "json", "--top-k", "5",
                   weights_dir=shared_weights_dir, isolated=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_cricket_sample_is_playing_cricket(cricket_rgb_result):
    result = cricket_rgb_result
    assert result["top"][0]["label"] == "playing cricket"
    assert result["top"][0]["probability"] > 0.95
    assert result["norm"] == pytest.approx(float(np.linalg.norm(np.float64(result["logits"]))), rel=1e-6)
    # Regression pins, not independent values: the preview-built sample is not DeepMind's clip, so DeepMind's
    # published numbers do not apply; these are the tool's own answers when they were last checked by hand
    # (test_inference holds OpenVINO to TensorFlow's logits, test_fvd the network to the TF-Hub reference).
    assert result["norm"] == pytest.approx(83.24, abs=0.05)
    assert result["top"][0]["logit"] == pytest.approx(17.64, abs=0.005)  # test_cache_edges prints it as "17.64"
    assert (result["type"], result["pretrain"], result["fusion"]) == ("rgb", "kinetics", "mean")
    assert result["weights"] == {"rgb": "rgb_scratch"}
    assert len(result["logits"]) == len(result["probabilities"]) == 400
    assert sum(result["probabilities"]) == pytest.approx(1.0, abs=1e-9)
    assert [row["rank"] for row in result["top"]] == [1, 2, 3, 4, 5]
    first = result["top"][0]
    assert result["logits"][first["index"]] == first["logit"] == max(result["logits"])


def test_table_output(cricket_clips, shared_weights_dir, cricket_rgb_result):
    proc = run_cli("--rgb", str(cricket_clips["rgb"]), "--top-k", "3", weights_dir=shared_weights_dir)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"Norm of logits: {cricket_rgb_result['norm']:.6f}"
    assert [cell.strip() for cell in lines[4].split("|")[1:3]] == ["1", "playing cricket"]
    assert len(lines) == 1 + 3 + 3 + 1  # norm, header box, three rows, bottom rule
    assert proc.stderr == ""  # TensorFlow's start-up noise stays silent


def test_softmax_is_stable_and_fusion_is_mean_or_sum():
    p = softmax(np.array([1000.0, 0.0, -1000.0]))
    assert np.isfinite(p).all() and p[0] == pytest.approx(1.0) and p.sum() == pytest.approx(1.0)
    a, b = np.array([1.0, 4.0]), np.array([3.0, -2.0])
    assert fuse_logits([a, b], "mean").tolist() == [2.0, 1.0]
    assert fuse_logits([a, b], "sum").tolist() == [4.0, 2.0]
    assert [r.label for r in top_k(np.array([0.5, 2.0, 1.0]), ["x", "y", "z"], 2)] == ["y", "z"]


@pytest.mark.slow  # two streams
def test_both_streams_fuse_the_two_logits(cricket_clips, shared_weights_dir, stand_in_flow, tmp_path):
    """Both streams with a stand-in flow checkpoint: fused logits are the mean (or sum) of the two streams."""
    import i3d
    from i3d.weights.store import WeightStore

    store = WeightStore(tmp_path)
    copy_rgb_cache(shared_weights_dir, tmp_path)
    injected = {"flow": stand_in_flow_copy(stand_in_flow, tmp_path)}
    # the sample's first 24 frames: the fusion is what is checked here, not the sample's answer (a third of the work)
    clips = {name: np.load(cricket_clips[name])[:, :24] for name in ("rgb", "flow")}

    def run(streams, fusion="mean"):
        return i3d.classify({s: clips[s] for s in streams}, streams, fusion=fusion, weight_sets=injected,
                            store=store, load=i3d.LoadOptions(download=False))

    rgb, flow = run(("rgb",)).logits, run(("flow",)).logits
    both = run(("rgb", "flow"))
    np.testing.assert_allclose(both.logits, (rgb + flow) / 2, rtol=1e-6, atol=1e-6)
    summed = run(("rgb", "flow"), "sum")
    np.testing.assert_allclose(summed.logits, rgb + flow, rtol=1e-6, atol=1e-6)
    assert both.weights == {"rgb": "rgb_scratch", "flow": "flow_scratch"}
    assert both.frames == {"rgb": 24, "flow": 24} and both.fusion == "mean"
    assert not np.allclose(rgb, flow)


def test_library_result_equals_the_command_line(cricket_clips, shared_store, cricket_rgb_result):
    """i3d.classify on the same clip gives the JSON's numbers; Result carries probabilities and top-k."""
    import i3d

    result = i3d.classify(np.load(cricket_clips["rgb"]), "rgb", top_k=5, store=shared_store,
                          load=i3d.LoadOptions(download=False))
    assert result.logits.tolist() == cricket_rgb_result["logits"]
    assert result.label == "playing cricket" and result.norm == cricket_rgb_result["norm"]
    assert [p.label for p in result.top] == [row["label"] for row in cricket_rgb_result["top"]]
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    assert set(result.seconds) == {"inputs", "load", "inference"}
    assert len(result.windows) == 1 and result.windows[0].span.frames == 79


def test_library_errors_are_value_errors_naming_values(tmp_path):
    import i3d

    with pytest.raises(ValueError, match="^top_k must be between 1 and 400, not 0$") as err:
        i3d.classify(np.zeros((9, 224, 224, 3), np.float32), top_k=0, store=i3d.WeightStore(tmp_path))
    assert isinstance(err.value, i3d.OptionError) and err.value.option == "top_k"
    with pytest.raises(i3d.InputError, match="at least 9"):
        i3d.classify(np.zeros((8, 224, 224, 3), np.float32), store=i3d.WeightStore(tmp_path))
    with pytest.raises(i3d.OptionError, match="window is 8 frames"):
        i3d.classify("any.mp4", video=i3d.VideoOptions(window=8), store=i3d.WeightStore(tmp_path))
    assert list(tmp_path.iterdir()) == []


# ---- bad input: exit code 3, one line on stderr, nothing written -------------

def _bad_inputs(folder):
    good = np.zeros((1, 9, 224, 224, 3), np.float32)
    cases = {}

    def save(name, array, **kwargs):
        path = folder / name
        np.save(path, array, **kwargs)
        return path

    cases["missing"] = (folder / "nope.npy", "no such file")
    text = folder / "notes.npy"
    text.write_text("hello")
    cases["not npy"] = (text, "not a valid .npy")
    cases["object array"] = (save("obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickled")
    raw_pickle = folder / "raw.npy"
    raw_pickle.write_bytes(pickle.dumps(good))
    cases["raw pickle"] = (raw_pickle, "not a valid .npy")
    npz = folder / "z.npy"
    with open(npz, "wb") as handle:
        np.savez(handle, clip=good)
    cases["npz"] = (npz, ".npz")
    cases["rank 3"] = (save("r3.npy", good[0, 0]), "shape")
    cases["batch 2"] = (save("b2.npy", np.concatenate([good, good])), "shape")
    cases["channels"] = (save("c2.npy", good[..., :2]), "2 channels")
    cases["size"] = (save("s.npy", np.zeros((1, 9, 256, 256, 3), np.float32)), "256x256")
    cases["ints"] = (save("u8.npy", np.zeros((1, 9, 224, 224, 3), np.uint8)), "dtype uint8")
    nan = good.copy()
    nan[0, 3, 5, 5, 1] = np.nan
    cases["nan"] = (save("nan.npy", nan), "NaN")
    inf = good.copy()
    inf[0, 0, 0, 0, 0] = np.inf
    cases["inf"] = (save("inf.npy", inf), "infinite")
    cases["8 frames"] = (save("f8.npy", good[:, :8]), "at least 9")
    cases["range"] = (save("rng.npy", good + 200.0), "outside [-1, 1]")
    return cases


def test_every_bad_input_exits_3_with_one_line(tmp_path):
    weights = tmp_path / "weights"
    weights.mkdir()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for n, (case, (path, message)) in enumerate(_bad_inputs(inputs).items()):
        # the first as a user meets it, in a fresh interpreter: nothing else reaches stderr (no library's
        # warnings, no log lines written below Python)
        proc = run_cli("--rgb", str(path), weights_dir=weights, isolated=n == 0)
        assert proc.returncode == 3, (case, proc.stderr)
        assert message in proc.stderr, (case, proc.stderr)
        assert str(path) in proc.stderr, case
        assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == "", case
    assert list(weights.iterdir()) == []


def test_flow_clip_given_to_the_rgb_stream_is_refused(tmp_path):
    path = tmp_path / "flow.npy"
    np.save(path, np.zeros((9, 224, 224, 2), np.float32))
    proc = run_cli("--rgb", str(path), weights_dir=tmp_path)
    assert proc.returncode == 3 and "expected (1, T, 224, 224, 3)" in proc.stderr


@pytest.mark.parametrize("args", [["--top-k", "0"], ["--type", "depth"], ["--type", "rgb", "--flow", "x.npy"],
                                  ["--fusion", "max"]])
def test_usage_errors_exit_2(tmp_path, args):
    proc = run_cli(*args, weights_dir=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
