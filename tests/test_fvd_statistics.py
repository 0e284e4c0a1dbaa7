"""FVD's statistics: the bootstrap interval, FVD at infinite N and KVD, on Gaussians whose distance is known exactly.

N(0, I) against N(mu, s^2 I) in d dimensions are d-dimensional "embeddings" whose Fréchet
distance is ``|mu|^2 + d (1 - s)^2`` in closed form, so every estimate here is checked
against the true value, not against another estimate.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

import i3d
from i3d.tasks.fvd.analysis import AnalysisOptions, analyse
from i3d.tasks.fvd.bootstrap import bootstrap_fvd
from i3d.tasks.fvd.factored import embedding_distance
from i3d.tasks.fvd.frechet import frechet_distance, moments
from i3d.tasks.fvd.kernel import kernel_distance, mmd2_unbiased
from i3d.tasks.fvd.unbiased import default_sizes, fit_line, unbiased_fvd


def gaussians(rng: np.random.Generator, count: int, mu: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """``count`` draws of N(0, I) and of N(mu, s^2 I)."""
    d = len(mu)
    return rng.normal(size=(count, d)), mu + s * rng.normal(size=(count, d))


def true_distance(mu: np.ndarray, s: float) -> float:
    """The Fréchet distance between N(0, I) and N(mu, s^2 I): |mu|^2 + tr(I + s^2 I - 2 s I)."""
    return float(mu @ mu + len(mu) * (1 - s) ** 2)


def test_the_closed_form_is_the_formula_on_exact_moments():
    mu, s = np.full(16, 1.0), 0.7
    assert true_distance(mu, s) == pytest.approx(17.44)
    exact = frechet_distance(np.zeros(16), np.eye(16), mu, s * s * np.eye(16))
    assert exact == pytest.approx(17.44, rel=1e-12)


@pytest.mark.parametrize("n, m, d", [(6, 6, 120), (50, 80, 120), (300, 250, 40), (200, 200, 4), (3, 2, 5)])
def test_factored_distance_is_tf_gans(n, m, d):
    """The resamples' distance (nuclear norm of R1 R2^T) against tf-gan's SVD form on the same embeddings, with
    fewer and with more embeddings than dimensions."""
    rng = np.random.default_rng(n + m + d)
    x = rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, d)
    y = 0.3 + rng.normal(size=(m, d))
    reference = frechet_distance(*moments(x), *moments(y))
    assert abs(embedding_distance(x, y) - reference) < 1e-9 * reference
    # normalised by N (as StyleGAN-V's statistics are): the covariances scaled by (N-1)/N
    (mean_x, cov_x), (mean_y, cov_y) = moments(x), moments(y)
    by_n = frechet_distance(mean_x, cov_x * (n - 1) / n, mean_y, cov_y * (m - 1) / m)
    assert abs(embedding_distance(x, y, ddof=0) - by_n) < 1e-9 * by_n


# --- FVD at infinite N -------------------------------------------------------------------------------------------

def test_fvd_inf_recovers_the_true_value_where_small_n_is_biased():
    """d = 32, |mu|^2 = 20.48, s = 0.7: true 23.36. 80 subsets at each of N = 64 ... 256 from 4096 per side.
    Measured: FVD_64 30.03 (+28.6%), FVD_128 26.54 (+13.6%), FVD_256 24.91 (+6.6%); FVD_inf 23.13 (-1.0%),
    R^2 0.9995."""
    mu, s = np.full(32, 0.8), 0.7
    true = true_distance(mu, s)
    rng = np.random.default_rng(2020)
    real, generated = gaussians(rng, 4096, mu, s)
    result = unbiased_fvd(real, generated, (64, 96, 128, 192, 256), rng, draws=80)
    at = dict(zip(result.sizes, result.distances))
    assert at[64] > at[128] > at[256] > 1.04 * true  # biased upward, less with more videos
    assert abs(result.value - true) < 0.02 * true
    assert result.slope > 0 and result.r2 > 0.97
    # covariances normalised by N: each point lower by its trace term / N, the same intercept
    by_n, by_n_minus_1 = (unbiased_fvd(real, generated, (64, 128, 256), np.random.default_rng(1), draws=10, ddof=ddof)
                          for ddof in (0, 1))
    assert all(a < b for a, b in zip(by_n.distances, by_n_minus_1.distances))
    assert abs(by_n.value - by_n_minus_1.value) < 0.002 * true and by_n.slope < by_n_minus_1.slope
    # the fit is the least-squares line through the mean FVD at each 1/N
    slope, intercept, _ = fit_line(1 / np.array(result.sizes), result.distances)
    assert (result.slope, result.value) == pytest.approx((slope, intercept), rel=1e-12)


def test_fit_line_and_default_sizes():
    x = np.array([0.1, 0.2, 0.4])
    assert fit_line(x, 3 + 5 * x) == pytest.approx((5.0, 3.0, 1.0))
    slope, intercept, r2 = fit_line(np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 1.0]))
    assert (slope, intercept) == pytest.approx((0.5, 0.5)) and r2 == pytest.approx(0.25)  # 1 - 1.5 / 2
    assert default_sizes(41) == (8, 13, 17, 22, 27, 32, 36, 41)
    assert default_sizes(2048)[0] == 409 and default_sizes(2048)[-1] == 2048 and len(default_sizes(2048)) == 8
    assert default_sizes(4) == (2, 3, 4)


# --- the bootstrap ------------------------------------------------------------------------------------------------

def test_bootstrap_interval_covers_the_true_value_at_its_nominal_rate():
    """A 90% interval, 60 seeds of 200 + 200 draws in 4 dimensions (true 4.16), 100 resamples each.
    Measured: the reported (reflected) interval covers in 55 of 60 (92%: 3 above the truth, 2 below); the plain
    percentile one, which carries FVD's upward bias twice, in 51 (85%)."""
    mu, s = np.full(4, 1.0), 0.8
    true = true_distance(mu, s)
    covered = plain = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        real, generated = gaussians(rng, 200, mu, s)
        interval = bootstrap_fvd(real, generated, 100, rng, confidence=0.9)
        assert interval.low < interval.distance < interval.high
        assert interval.high - interval.distance == pytest.approx(interval.distance - interval.percentile_low)
        covered += interval.low <= true <= interval.high
        plain += interval.percentile_low <= true <= interval.percentile_high
    assert 0.80 <= covered / 60 <= 0.98
    assert plain < covered


def test_bootstrap_is_seeded_and_checks_itself():
    rng = np.random.default_rng(0)
    real, generated = gaussians(rng, 50, np.full(3, 0.5), 0.9)
    first = bootstrap_fvd(real, generated, 20, np.random.default_rng(7))
    assert first == bootstrap_fvd(real, generated, 20, np.random.default_rng(7))
    assert first != bootstrap_fvd(real, generated, 20, np.random.default_rng(8))
    assert first.distance == pytest.approx(frechet_distance(*moments(real), *moments(generated)), rel=1e-12)
    assert first.mean > first.distance  # resamples repeat videos: FVD's bias, once more
    with pytest.raises(ValueError, match="at least 2 replicates"):
        bootstrap_fvd(real, generated, 1, rng)


# --- KVD --------------------------------------------------------------------------------------------------------

def mmd2_by_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, one pair at a time in plain Python."""
    d = len(x[0])

    def k(a, b):
        return (sum(float(p) * float(q) for p, q in zip(a, b)) / d + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2.0 * xy


def test_kvd_is_the_quadratic_time_formula():
    rng = np.random.default_rng(3)
    for m, n, d in ((7, 9, 5), (12, 12, 400), (2, 3, 1)):
        x, y = rng.normal(size=(m, d)), 0.3 + 1.2 * rng.normal(size=(n, d))
        ours, loops = mmd2_unbiased(x, y), mmd2_by_loops(x, y)
        assert abs(ours - loops) <= 1e-9 * max(1.0, abs(loops)), (m, n, d)
    # one subset of everything is the formula on the full sets (a permutation changes nothing)
    x, y = rng.normal(size=(10, 4)), rng.normal(size=(10, 4)) + 1
    whole = kernel_distance(x, y, np.random.default_rng(0), subsets=1, subset_size=10)
    assert whole.mean == pytest.approx(mmd2_by_loops(x, y), abs=1e-9) and whole.std == 0.0


def test_kvd_subsets_mean_and_spread():
    """Unbiased: about 0 for two samples of one distribution (within its spread), clearly above it otherwise."""
    rng = np.random.default_rng(4)
    same = kernel_distance(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), rng, subsets=20, subset_size=100)
    shifted = kernel_distance(rng.normal(size=(400, 8)), 0.5 + rng.normal(size=(400, 8)), rng, subsets=20,
                              subset_size=100)
    assert same.subsets == 20 and same.subset_size == 100 and same.std > 0
    assert abs(same.mean) < 3 * same.std / np.sqrt(20)
    assert shifted.mean > 10 * abs(same.mean) and shifted.mean > 5 * shifted.std / np.sqrt(20)


# --- options ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, flag, message", [
    (AnalysisOptions(bootstrap=1), "bootstrap", "must be 0 (none) or at least 2"),
    (AnalysisOptions(bootstrap=-5), "bootstrap", "must be 0 (none) or at least 2"),
    (AnalysisOptions(metric="fid"), "metric", "one of fvd, kvd, both"),
    (AnalysisOptions(metric="kvd", bootstrap=10), "metric", "use --metric both"),
    (AnalysisOptions(unbiased=True, subset_sizes=(8, 8)), "subset_sizes", "two different sizes"),
    (AnalysisOptions(unbiased=True, subset_sizes=(1, 8)), "subset_sizes", "at least 2"),
    (AnalysisOptions(confidence=1.0), "confidence", "between 0 and 1"),
    (AnalysisOptions(kvd_subsets=0, metric="kvd"), "kvd_subsets", "at least 1"),
])
def test_options_are_checked(options, flag, message):
    with pytest.raises(i3d.OptionError, match=re.escape(message)) as caught:
        options.check()
    assert caught.value.option == flag


def test_options_against_the_sides():
    AnalysisOptions(unbiased=True, subset_sizes=(4, 8)).check_sides(8, 10, False, False)
    with pytest.raises(i3d.OptionError, match=r"at most 8 \(the smaller side's videos\), not 9"):
        AnalysisOptions(unbiased=True, subset_sizes=(4, 9)).check_sides(8, 10, False, False)
    with pytest.raises(i3d.OptionError, match=r"kvd_subset_size may be at most 8"):
        AnalysisOptions(metric="kvd", kvd_subset_size=20).check_sides(10, 8, False, False)
    with pytest.raises(i3d.OptionError, match="the generated side is saved statistics"):
        AnalysisOptions(bootstrap=10).check_sides(10, 8, False, True)
    with pytest.raises(i3d.OptionError, match="metric kvd needs each video's embedding, and the real side"):
        AnalysisOptions(metric="kvd").check_sides(10, 8, True, False)
    AnalysisOptions().check_sides(10, 8, True, True)  # plain FVD from statistics, as ever


def test_analysis_streams_are_independent_and_repeat():
    rng = np.random.default_rng(5)
    real, generated = gaussians(rng, 30, np.full(3, 0.4), 0.9)
    both = analyse(real, generated, AnalysisOptions(metric="both", bootstrap=5, unbiased=True, kvd_subsets=3))
    kvd_only = analyse(real, generated, AnalysisOptions(metric="kvd", kvd_subsets=3))
    assert kvd_only.kvd == both.kvd and kvd_only.bootstrap is None and kvd_only.unbiased is None
    assert both == analyse(real, generated, AnalysisOptions(metric="both", bootstrap=5, unbiased=True, kvd_subsets=3))
    assert both.unbiased.sizes == default_sizes(30) and both.kvd.subset_size == 30


# --- the command ------------------------------------------------------------------------------------------------

def noise_videos(count: int, seed: int, level: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(level, 40, (count, 16, 32, 32, 3)), 0, 255).astype(np.uint8)


def test_command_reports_the_statistics(tmp_path, monkeypatch, capsys, recognizer):
    """The embeddings are made once through the library (filling the cache the command reads), so the command
    itself embeds nothing; its numbers equal the library's math on the same embeddings."""
    from i3d.commands.fvd import main

    np.save(tmp_path / "real.npy", noise_videos(4, 1, 100))
    np.save(tmp_path / "generated.npy", noise_videos(4, 2, 140))
    cache = tmp_path / "cache"
    options = i3d.FVDOptions(batch_size=4, cache_dir=cache / "fvd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        real = i3d.fvd_embeddings(tmp_path / "real.npy", options, recognizer=recognizer)
        generated = i3d.fvd_embeddings(tmp_path / "generated.npy", options, recognizer=recognizer)
    monkeypatch.setenv("I3D_CACHE_DIR", str(cache))
    sides = [str(tmp_path / "real.npy"), str(tmp_path / "generated.npy")]
    flags = ["--metric", "both", "--bootstrap", "40", "--unbiased", "--subset-sizes", "2,3,4", "--kvd-subsets", "5",
             "--resample-seed", "11"]
    assert main([*sides, *flags, "--format", "json", "--curve", str(tmp_path / "curve.png"),
                 "--save-stats", str(tmp_path / "real_stats.npz")]) == 0
    report = json.loads(capsys.readouterr().out)
    expected = analyse(real, generated, AnalysisOptions(metric="both", bootstrap=40, unbiased=True,
                                                        subset_sizes=(2, 3, 4), kvd_subsets=5, resample_seed=11))
    assert report["real"]["embedded"] == report["generated"]["embedded"] == 0  # all from the cache
    assert report["fvd"] == pytest.approx(frechet_distance(*moments(real), *moments(generated)), rel=1e-12)
    assert report["metric"] == "both" and report["resample_seed"] == 11
    assert report["bootstrap"]["replicates"] == 40 and report["bootstrap"]["confidence"] == 0.95
    assert (report["bootstrap"]["low"], report["bootstrap"]["high"]) == (expected.bootstrap.low,
                                                                          expected.bootstrap.high)
    assert report["bootstrap"]["low"] < report["fvd"] < report["bootstrap"]["high"]
    unbiased = report["unbiased"]
    assert unbiased["sizes"] == [2, 3, 4] and unbiased["draws"] == 3 and len(unbiased["fvd"]) == 3
    assert (unbiased["fvd_inf"], unbiased["slope"], unbiased["r2"]) == (expected.unbiased.value,
                                                                        expected.unbiased.slope, expected.unbiased.r2)
    assert unbiased["fvd"][-1] == pytest.approx(report["fvd"], rel=1e-12)  # 4 of 4 videos: the full sets
    assert (report["kvd"]["mean"], report["kvd"]["std"]) == (expected.kvd.mean, expected.kvd.std)
    assert report["kvd"]["subsets"] == 5 and report["kvd"]["subset_size"] == 4
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main([*sides, "--metric", "kvd", "--kvd-subsets", "5", "--resample-seed", "11"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"KVD: {expected.kvd.mean:.6g} ± ") and "FVD-16" not in text

    (tmp_path / "frames").mkdir()
    for args, message in (
            ([str(tmp_path / "real_stats.npz"), sides[1], "--bootstrap", "10"],
             "--bootstrap needs each video's embedding, and the real side is saved statistics"),
            ([str(tmp_path / "real_stats.npz"), sides[1], "--curve", str(tmp_path / "stats_curve.png")],
             "--curve needs each video's embedding, and the real side is saved statistics"),
            ([*sides, "--unbiased", "--subset-sizes", "2,5"], "--subset-sizes may be at most 4"),
            ([*sides, "--bootstrap", "1"], "--bootstrap must be 0 (none) or at least 2"),
            ([*sides, "--curve", sides[0]], "unknown file type '.npy'; use .png"),
            ([str(tmp_path / "frames"), sides[1], "--curve", str(tmp_path / "frames" / "c.png")],
             "is inside the input folder")):
        assert main(args) == 2, args
        errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning:")]
        assert len(errors) == 1 and errors[0].startswith("error:") and message in errors[0], errors
