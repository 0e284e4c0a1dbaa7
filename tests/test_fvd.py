"""FVD against the reference pipeline itself: TF1's resize, the TF-Hub module's graph, tf-gan's formula."""

from __future__ import annotations

import json
import os
import warnings

import cv2
import numpy as np
import pytest
from support import needs_shared, run_cli, write_video

import i3d
from i3d.tasks.fvd.frechet import frechet_distance, moments

REFERENCE_EXAMPLE = 133.909
"""The reference's own example (16 videos of 15 frames at 64x64, zeros against 255) through the original graph."""


def textured_videos(count: int, frames: int, height: int, width: int, seed: int) -> np.ndarray:
    """uint8 videos: a smooth random background with a bright square moving across it, one per video."""
    rng = np.random.default_rng(seed)
    videos = np.empty((count, frames, height, width, 3), np.uint8)
    for n in range(count):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        background = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        speed = int(rng.integers(1, 4))
        for t in range(frames):
            frame = background.copy()
            x = (3 + speed * t) % (width - 10)
            frame[height // 3: height // 3 + 10, x:x + 10] = rng.integers(150, 256, 3)
            videos[n, t] = frame
    return videos


@pytest.fixture(scope="module")
def real() -> np.ndarray:
    return textured_videos(8, 16, 48, 64, seed=1)


@pytest.fixture(scope="module")
def generated() -> np.ndarray:
    return textured_videos(8, 16, 64, 80, seed=2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, shared_store):
    """The reference pipeline on the TF-Hub module, its data file written from our verified weights."""
    if not (__import__("support").SHARED / "reference" / "tfhub_i3d_kinetics_400").is_dir():
        pytest.skip("../shared/reference/tfhub_i3d_kinetics_400 missing")
    from tfhub_reference import ReferencePipeline, build_module

    pipeline = ReferencePipeline(build_module(tmp_path_factory.mktemp("tfhub") / "module", shared_store))
    yield pipeline
    pipeline.close()


@pytest.fixture(scope="module")
def embedded(recognizer, real, generated):
    """Our embeddings of both sets (OpenVINO, the session's network)."""
    options = i3d.FVDOptions(batch_size=4)
    return (i3d.fvd_embeddings(real, options, recognizer=recognizer),
            i3d.fvd_embeddings(generated, options, recognizer=recognizer))


# --- exactly the reference ---------------------------------------------------------------------------------------

@needs_shared
def test_resize_is_tf1_resize_bilinear_bit_for_bit():
    import tensorflow as tf

    from i3d.preprocess.legacy_bilinear import resize_bilinear_legacy

    rng = np.random.default_rng(0)
    for height, width in ((64, 64), (48, 80), (240, 320), (300, 224), (224, 224), (7, 500), (1, 1)):
        frames = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
        ours = resize_bilinear_legacy(frames, 224, 224)
        theirs = tf.compat.v1.image.resize_bilinear(frames, (224, 224), align_corners=False,
                                                     half_pixel_centers=False).numpy()
        assert ours.dtype == np.float32 and ours.shape == (2, 224, 224, 3)
        assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32)), (height, width)


@needs_shared
def test_module_runs_our_verified_weights(reference, pretrained_rgb):
    """The rebuilt data file is rgb_scratch's (sha256 checked when built) and every variable restores to ours."""
    from i3d.weights.loading import model_tensors

    ours = model_tensors(pretrained_rgb, "RGB")
    restored = reference.variables()
    assert len(restored) == len(ours) == 230
    for name, value in ours.items():
        assert np.array_equal(restored[name].reshape(value.shape), value), name


@needs_shared
def test_model_input_is_the_reference_input_bit_for_bit(reference, real):
    from i3d.tasks.fvd.measure import model_input

    theirs = reference.session.run(reference.scaled, {reference.frames: real[0]})
    ours = model_input(real[0])
    assert ours.dtype == np.float32
    assert np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


@needs_shared
def test_embeddings_and_distance_equal_the_reference(reference, embedded, real, generated):
    ours_real, ours_gen = embedded
    theirs_real, theirs_gen = reference.embed(real), reference.embed(generated)
    assert ours_real.shape == theirs_real.shape == (8, 400)
    # OpenVINO and TensorFlow's graph differ by float32 rounding only (measured 3.5e-5, logits up to 9.5)
    assert np.abs(ours_real - theirs_real).max() < 1e-4
    assert np.abs(ours_gen - theirs_gen).max() < 1e-4
    ours = frechet_distance(*moments(ours_real), *moments(ours_gen))
    theirs = reference.distance(theirs_real.astype(np.float64), theirs_gen.astype(np.float64))
    assert theirs > 10
    assert abs(ours - theirs) / theirs < 1e-5  # measured 1.8e-6
    # the same embeddings through our formula and through tf-gan's in TensorFlow: float64 rounding apart
    same = frechet_distance(*moments(theirs_real), *moments(theirs_gen))
    assert abs(same - theirs) / theirs < 1e-9  # measured 7.7e-15


@pytest.mark.slow  # the TensorFlow network as well
@needs_shared
def test_tensorflow_backend_is_closer_still(reference, shared_store, real):
    options = i3d.FVDOptions(engine=i3d.EngineOptions("tensorflow"), batch_size=4)
    ours = i3d.fvd_embeddings(real[:4], options, store=shared_store, load=i3d.LoadOptions(download=False))
    theirs = reference.embed(real[:4])
    assert np.abs(ours - theirs).max() < 1e-5  # measured 0.0 on the CPU: the same kernels, bit for bit


@needs_shared
def test_reference_example_gives_133_909_not_131(reference, recognizer, tmp_path):
    """The reference README says "around 131"; its own graph and code give 133.909 (so do we)."""
    zeros = np.zeros((16, 15, 64, 64, 3), np.uint8)
    full = np.full((16, 15, 64, 64, 3), 255, np.uint8)
    with pytest.warns(UserWarning, match="has 16 videos"):
        result = i3d.fvd(zeros, full, i3d.FVDOptions(frames=15, cache_dir=tmp_path), recognizer=recognizer)
    # every video alike: the reference's embeddings of one of each, repeated, are its embeddings of all
    theirs = reference.distance(np.repeat(reference.embed(zeros[:1]), 16, 0).astype(np.float64),
                                np.repeat(reference.embed(full[:1]), 16, 0).astype(np.float64))
    # 133.909 where it was first measured, 133.9083 on an AVX-512 Zen 5: TensorFlow's kernels vary by CPU
    assert abs(theirs - REFERENCE_EXAMPLE) < 2e-3
    assert abs(result.distance - theirs) < 1e-3  # measured 2.1e-4 (OpenVINO rounding)
    assert abs(result.distance - 131) > 2.5
    assert (result.real.videos, result.generated.videos, result.frames) == (16, 16, 15)
    assert result.real.embedded == result.generated.embedded == 1  # fifteen repeats of one content each


# --- the distance ------------------------------------------------------------------------------------------------

def test_distance_of_a_set_to_itself_is_zero(embedded):
    mean, cov = moments(embedded[0])
    assert abs(frechet_distance(mean, cov, mean, cov)) < 1e-9 * np.trace(cov)


def test_distance_is_symmetric(embedded):
    a, b = moments(embedded[0]), moments(embedded[1])
    ab, ba = frechet_distance(*a, *b), frechet_distance(*b, *a)
    assert ab > 10 and abs(ab - ba) / ab < 1e-9


@pytest.mark.parametrize("source", ["network", "random"])
def test_distance_equals_an_independent_scipy_computation(embedded, source):
    """|dmu|^2 + tr(S1 + S2 - 2 sqrtm(S1 S2)) with scipy's sqrtm: singular covariances (8 videos) and full-rank."""
    from scipy.linalg import sqrtm

    if source == "network":
        a, b = embedded
        tolerance = 1e-6  # S1 S2 of rank 7: sqrtm's Schur method loses digits on the null space (measured 2.8e-7)
    else:
        rng = np.random.default_rng(3)
        a = rng.normal(size=(300, 64))
        b = rng.normal(0.1, 1.2, size=(200, 64)) @ rng.normal(0, 0.3, (64, 64))
        tolerance = 1e-9
    ma, sa = np.mean(a, 0, dtype=np.float64), np.cov(a.astype(np.float64), rowvar=False)
    mb, sb = np.mean(b, 0, dtype=np.float64), np.cov(b.astype(np.float64), rowvar=False)
    scipy_value = float(np.sum((ma - mb) ** 2) + np.trace(sa + sb - 2 * sqrtm(sa @ sb).real))
    ours = frechet_distance(*moments(a), *moments(b))
    assert abs(ours - scipy_value) / scipy_value < tolerance


def test_moments_use_n_minus_1():
    x = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]], np.float32)
    mean, cov = moments(x)
    assert np.allclose(mean, [2.0, 4.0])
    assert np.allclose(cov, np.cov(x.T.astype(np.float64), ddof=1))


# --- inputs, statistics, cache -----------------------------------------------------------------------------------

def test_folders_of_frames_and_videos(tmp_path, recognizer, real, embedded):
    """PNG frame folders give exactly the array's embeddings; a video folder's first 16 decoded frames are used."""
    side = tmp_path / "side"
    for n in range(3):
        folder = side / f"video{n}"
        folder.mkdir(parents=True)
        for t in range(18 if n else 16):  # more images than needed: the first 16 are taken
            frame = real[n, t] if t < 16 else np.zeros_like(real[n, 0])
            cv2.imwrite(str(folder / f"{t + 1}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    write_video(side / "zz_clip.avi", 20, width=64, height=48)
    (side / "notes.txt").write_text("not a video")
    options = i3d.FVDOptions(batch_size=4)
    got = i3d.fvd_embeddings(side, options, recognizer=recognizer)
    assert got.shape == (4, 400)
    assert np.abs(got[:3] - embedded[0][:3]).max() < 1e-5  # same pixels, another batch composition
    from i3d.inputs.video import first_video_frames

    clip = first_video_frames(side / "zz_clip.avi", 16)
    alone = i3d.fvd_embeddings(clip[np.newaxis], options, recognizer=recognizer)
    assert np.abs(got[3] - alone[0]).max() < 1e-5


@pytest.mark.slow  # embeds two sets again
def test_statistics_round_trip_and_stand_in(tmp_path, recognizer, real, generated):
    options = i3d.FVDOptions(batch_size=4, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = i3d.fvd_stats(real, options, recognizer=recognizer)
        path = stats.save(tmp_path / "real_stats.npz")
        loaded = i3d.load_stats(path)
        assert np.array_equal(loaded.mean, stats.mean) and np.array_equal(loaded.cov, stats.cov)
        assert loaded.count == 8 and loaded.settings == stats.settings and loaded.backend == "openvino"
        from_videos = i3d.fvd(real, generated, options, recognizer=recognizer)
        from_file = i3d.fvd(path, generated, options, recognizer=recognizer)
    assert from_file.real.from_stats and from_file.real.videos == 8
    assert from_file.distance == from_videos.distance > 10
    other = i3d.FVDOptions(frames=12, cache_dir=tmp_path / "cache")
    with pytest.raises(i3d.InputError, match="frames 16 .this run: 12"):
        i3d.fvd(path, generated, other, recognizer=recognizer)


@pytest.mark.slow  # a bf16 network as well
def test_bf16_warns_is_not_cached_and_never_mixes_with_fp32(tmp_path, shared_store, recognizer, real, generated):
    if "avx512_bf16" not in open("/proc/cpuinfo").read() and "amx_bf16" not in open("/proc/cpuinfo").read():
        pytest.skip("this CPU has no native bf16")
    cache = tmp_path / "cache"
    options = i3d.FVDOptions(batch_size=4, cache_dir=cache, engine=i3d.EngineOptions(precision="bf16"))
    with pytest.warns(UserWarning, match="only fp32 is the reference"):
        stats = i3d.fvd_stats(real, options, store=shared_store)
    assert stats.settings["precision"] == "bf16" and not cache.exists()
    fp32 = i3d.fvd_embeddings(real, i3d.FVDOptions(batch_size=4), recognizer=recognizer)
    assert np.abs(stats.mean - fp32.mean(0)).max() < 0.5  # bf16 logits stay near fp32's
    path = stats.save(tmp_path / "bf16_stats.npz")
    with pytest.raises(i3d.InputError, match="precision 'bf16' .this run: 'fp32'"):
        i3d.fvd(path, generated, i3d.FVDOptions(batch_size=4), recognizer=recognizer)


@pytest.mark.slow  # embeds three sets
def test_cache_embeds_only_new_videos(tmp_path, monkeypatch, recognizer, real, generated):
    runner = recognizer.runners["rgb"]
    calls = []
    real_outputs = runner.outputs

    def counting(clips):
        calls.append(len(clips))
        return real_outputs(clips)

    monkeypatch.setattr(runner, "outputs", counting)
    options = i3d.FVDOptions(batch_size=4, cache_dir=tmp_path / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = i3d.fvd(real[:5], generated[:4], options, recognizer=recognizer)
        assert sum(calls) == 9 and (first.real.embedded, first.real.cached) == (5, 0)
        calls.clear()
        again = i3d.fvd(real[:5], generated[:4], options, recognizer=recognizer)
        assert calls == [] and again.distance == first.distance and again.generated.cached == 4
        more = i3d.fvd(real, generated[:4], options, recognizer=recognizer)  # three videos added
        assert sum(calls) == 3 and (more.real.embedded, more.real.cached) == (3, 5)
        calls.clear()
        entry = sorted((tmp_path / "cache").glob("*.npy"))[0]
        entry.write_bytes(entry.read_bytes()[:-1] + b"\0")  # damage the checksum
    with pytest.warns(UserWarning, match="corrupt embedding cache entry"):
        i3d.fvd(real, generated[:4], options, recognizer=recognizer)
    assert sum(calls) == 1
    other = i3d.FVDOptions(batch_size=4, cache_dir=tmp_path / "cache", frames=12)  # other settings: other keys
    calls.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        i3d.fvd(real[:2], generated[:2], other, recognizer=recognizer)
    assert sum(calls) == 4


@pytest.mark.parametrize("videos, message", [
    (np.zeros((4, 16, 32, 32, 3), np.float32), "dtype float32"),
    (np.zeros((4, 16, 32, 32, 4), np.uint8), "4 channels"),
    (np.zeros((16, 32, 32, 3), np.uint8), r"shape \(16, 32, 32, 3\)"),
    (np.zeros((0, 16, 32, 32, 3), np.uint8), "holds no videos"),
    (np.zeros((4, 12, 32, 32, 3), np.uint8), "videos have 12 frames; the first 16"),
    (np.zeros((1, 16, 32, 32, 3), np.uint8), "has 1 video; FVD needs at least 2"),
    ([np.zeros((16, 32, 32, 3), np.uint8), np.zeros((16, 40, 32, 3), np.uint8)], "mixed shapes"),
])
def test_bad_arrays_are_refused_before_loading(videos, message):
    good = np.zeros((4, 16, 32, 32, 3), np.uint8)
    with pytest.raises(i3d.InputError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        i3d.fvd(good, videos, store=i3d.WeightStore(__import__("pathlib").Path("/nonexistent")))


def test_bad_options_and_files(tmp_path):
    good = np.zeros((4, 16, 32, 32, 3), np.uint8)
    with pytest.raises(i3d.OptionError, match="frames must be at least 9"):
        i3d.fvd(good, good, i3d.FVDOptions(frames=8))
    with pytest.raises(i3d.OptionError, match="batch_size"):
        i3d.fvd(good, good, i3d.FVDOptions(batch_size=0))
    np.savez(tmp_path / "two.npz", a=good, b=good)
    np.save(tmp_path / "ragged.npy", np.array([good[0], good[0, :3]], dtype=object))
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "1.png"), good[0, 0])
    (tmp_path / "empty").mkdir()
    for name, message in (("two.npz", "holds arrays a, b"), ("ragged.npy", "Python objects"),
                          ("images", "holds images, not videos"), ("empty", "no videos"),
                          ("missing.npy", "no such file")):
        with pytest.raises(i3d.InputError, match=message):
            i3d.fvd(good, tmp_path / name)



def test_forged_sides_and_statistics_are_refused_from_their_headers(tmp_path, monkeypatch):
    """Sizes come from headers before anything is decompressed; statistics that are not moments are refused
    (a distance is never negative)."""
    import io
    import json

    good = np.zeros((4, 16, 32, 32, 3), np.uint8)
    with open(tmp_path / "negative.npy", "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (-4, 16, 32, 32, 3)})
        handle.write(good.tobytes())
    with pytest.raises(i3d.InputError, match=r"negative\.npy: cannot be read as an array .*shape \(-4"):
        i3d.fvd(good, tmp_path / "negative.npy")
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (400, 250, 224, 224, 3)})
    import zipfile

    with zipfile.ZipFile(tmp_path / "bomb.npz", "w") as archive:
        archive.writestr("v.npy", buffer.getvalue() + bytes(1000))
    with pytest.raises(i3d.InputError, match=r"bomb\.npz: its header says shape \(400, 250, 224, 224, 3\)"):
        i3d.fvd(good, tmp_path / "bomb.npz")
    np.savez_compressed(tmp_path / "zeros.npz", v=good)
    monkeypatch.setattr("i3d.inputs.video_sets.physical_memory", lambda: 2 * good.nbytes - 2)
    with pytest.raises(i3d.InputError, match=r"zeros\.npz: its array is 0\.0 GB decompressed .*more than half"):
        i3d.fvd(good, tmp_path / "zeros.npz")
    monkeypatch.undo()

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8))
    mean, cov = x.mean(0), np.cov(x, rowvar=False)
    settings = json.dumps({"frames": 16})

    def stats(name, **arrays):
        fields = {"mean": mean, "cov": cov, "count": np.int64(50), "settings": settings, "backend": "openvino"}
        fields.update(arrays)
        np.savez(tmp_path / name, **fields)
        return tmp_path / name

    assert i3d.load_stats(stats("fine.npz")).count == 50
    for name, arrays, message in (
            ("count.npz", {"count": np.arange(3)}, "its count is a int64 array of shape \\(3,\\)"),
            ("huge.npz", {"cov": cov * 1e306}, "values up to .*e\\+30., beyond any embedding's"),
            ("skew.npz", {"cov": cov + np.triu(np.ones_like(cov), 1)}, "its covariance is not symmetric"),
            ("negative.npz", {"cov": -cov}, "not positive semi-definite"),
            ("big.npz", {"cov": np.zeros((3000, 3000))}, "holds an array of 72000128 bytes decompressed")):
        with pytest.raises(i3d.InputError, match=message):
            i3d.load_stats(stats(name, **arrays))

# --- the command -------------------------------------------------------------------------------------------------

@pytest.mark.slow  # a command process embedding two sets (test_command_errors_are_one_line keeps the command in the fast tier)
def test_command_json_stats_and_cache(tmp_path, shared_weights_dir, embedded, real, generated):
    np.save(tmp_path / "real.npy", real)
    np.savez(tmp_path / "generated.npz", videos=generated)
    env = {"I3D_CACHE_DIR": str(tmp_path / "cache")}
    done = run_cli("fvd", str(tmp_path / "real.npy"), str(tmp_path / "generated.npz"), "--format", "json",
                   "--save-stats", str(tmp_path / "real_stats.npz"), "--batch-size", "4", "--offline",
                   weights_dir=shared_weights_dir, module="i3d", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected = frechet_distance(*moments(embedded[0]), *moments(embedded[1]))
    assert abs(report["fvd"] - expected) < 1e-6 * expected
    assert report["real"]["videos"] == report["generated"]["videos"] == 8 and report["frames"] == 16
    assert report["real"]["embedded"] == 8 and report["weights"] == {"rgb": "rgb_scratch"}
    assert report["settings"]["resize"] == "tf1-bilinear-224x224" and report["backend"] == "openvino"
    assert "the real side has 8 videos" in done.stderr
    again = run_cli("fvd", str(tmp_path / "real_stats.npz"), str(tmp_path / "generated.npz"), "--format", "json",
                    weights_dir=shared_weights_dir, module="i3d", env=env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["fvd"] == report["fvd"] and second["real"]["statistics"] and second["generated"]["cached"] == 8


def test_command_errors_are_one_line(tmp_path, shared_weights_dir):
    """Including outputs refused before any work: one over an input (by name, or a hard link), one unwritable."""
    np.save(tmp_path / "short.npy", np.zeros((4, 12, 32, 32, 3), np.uint8))
    np.savez(tmp_path / "gen.npz", v=np.zeros((4, 16, 32, 32, 3), np.uint8))
    np.savez(tmp_path / "short.npz", v=np.zeros((4, 16, 32, 32, 3), np.uint8))
    os.link(tmp_path / "short.npz", tmp_path / "link.npz")
    (tmp_path / "ro").mkdir(mode=0o500)
    np.save(tmp_path / "floats.npy", np.zeros((4, 16, 32, 32, 3), np.float32))
    for args, code, text in (((str(tmp_path / "short.npy"), str(tmp_path / "short.npy")), 3, "12 frames"),
                             ((str(tmp_path / "floats.npy"), str(tmp_path / "short.npy"), "--frames", "9"), 3,
                              "dtype float32"),
                             ((str(tmp_path / "short.npy"), str(tmp_path / "short.npy"), "--frames", "4"), 2,
                              "--frames must be at least 9"),
                             ((str(tmp_path / "short.npy"), str(tmp_path / "short.npy"), "--save-stats",
                               str(tmp_path / "x.txt")), 2, "x.txt: unknown file type '.txt'; use .npz"),
                             ((str(tmp_path / "short.npy"), str(tmp_path / "gen.npz"), "--save-generated-stats",
                               str(tmp_path / "gen.npz")), 2, "gen.npz is also an input"),
                             ((str(tmp_path / "short.npy"), str(tmp_path / "link.npz"), "--save-stats",
                               str(tmp_path / "short.npz")), 2, "is also an input"),
                             ((str(tmp_path / "short.npy"), str(tmp_path / "short.npy"), "--save-stats",
                               str(tmp_path / "ro" / "s.npz")), 2, "is not writable"))[:None if os.geteuid() else -1]:
        done = run_cli("fvd", *args, weights_dir=shared_weights_dir, module="i3d")
        lines = done.stderr.strip().splitlines()
        assert done.returncode == code, done.stderr
        assert len(lines) == 1 and lines[0].startswith("error:") and text in lines[0], done.stderr
