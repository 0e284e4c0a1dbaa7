"""Compiled per-pixel passes of the TV-L1 solver in :mod:`i3d.preprocess.tvl1` (numba, float32, no fast-math).

Every expression keeps the float32 operation order of OpenCV's
``DualTVL1OpticalFlow`` so that results match it bit for bit: no operation is
reassociated, contracted into a fused multiply-add or promoted to float64,
except the dual-variable norm, which OpenCV takes as a double-precision
``hypot`` of two floats and which is computed here as the double square root
of the exact double sum of squares, then rounded to float32.

The iterations come twice, compiled from the same row functions: spread over
threads row by row (one frame pair using every core), and on the calling
thread alone (many pairs solved side by side, one per thread, which keeps
every core busy without a thread barrier per pass).

Load this module through :func:`i3d.preprocess.tvl1.load_engine`, which decides
where the compiled code is cached before the functions below are compiled.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange, types

F32 = types.float32
F64 = types.float64
I64 = types.int64
IMG = types.Array(F32, 2, "C")

FLT_EPSILON = np.float32(np.finfo(np.float32).eps)

SERIAL, EXACT, FLOAT64 = 0, 1, 2
"""Stopping-sum modes of the iterations: always OpenCV's serial float32 sum; a float64 sum, with the serial
sum only when rounding could change the decision (identical decisions, by the error bound); the float64 sum
alone (for measurement)."""

STAT_ITERATIONS, STAT_ABOVE, STAT_SERIAL_SUMS, STAT_FLOAT64_FLIPS = range(4)
"""Slots of the iterations' ``stats`` array."""

_OPTIONS = dict(error_model="numpy", fastmath=False, nogil=True)
_ITERATE = types.void(IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG, types.Array(F64, 1, "C"),
                      F32, F32, F32, F32, I64, I64, types.Array(I64, 1, "C"))


def compile_all(cache: bool) -> dict:
    """Compile (or load from the on-disk cache) every kernel; returns them by name."""
    return {
        "centered_gradient": njit(types.void(IMG, IMG, IMG), cache=cache, **_OPTIONS)(_centered_gradient),
        "warp_maps": njit(types.void(IMG, IMG, IMG, IMG), cache=cache, **_OPTIONS)(_warp_maps),
        "grad_rho": njit(types.void(IMG, IMG, IMG, IMG, IMG, IMG, IMG, IMG), cache=cache, **_OPTIONS)(_grad_rho),
        "iterate_threads": njit(_ITERATE, cache=cache, parallel=True, **_OPTIONS)(_iterate_threads),
        "iterate": njit(_ITERATE, cache=cache, **_OPTIONS)(_iterate),
    }


def _centered_gradient(src, dx, dy):
    """Central differences halved; one-sided (still halved) on the border rows and columns."""
    h, w = src.shape
    half = np.float32(0.5)
    for y in range(h):
        up = y - 1 if y > 0 else 0
        down = y + 1 if y < h - 1 else h - 1
        for x in range(w):
            left = x - 1 if x > 0 else 0
            right = x + 1 if x < w - 1 else w - 1
            dx[y, x] = half * (src[y, right] - src[y, left])
            dy[y, x] = half * (src[down, x] - src[up, x])


def _warp_maps(u1, u2, map_x, map_y):
    """Sampling positions (x + u1, y + u2) of the second image under the current flow."""
    h, w = u1.shape
    for y in range(h):
        fy = np.float32(y)
        for x in range(w):
            map_x[y, x] = np.float32(x) + u1[y, x]
            map_y[y, x] = fy + u2[y, x]


def _grad_rho(i0, i1w, i1wx, i1wy, u1, u2, grad, rho_c):
    """Squared gradient norm of the warped image and the flow-independent part of the linearised residual."""
    h, w = i0.shape
    for y in range(h):
        for x in range(w):
            gx = i1wx[y, x]
            gy = i1wy[y, x]
            grad[y, x] = gx * gx + gy * gy
            rho_c[y, x] = i1w[y, x] - gx * u1[y, x] - gy * u2[y, x] - i0[y, x]


@njit(inline="always", error_model="numpy")
def _primal(gx, gy, g2, rc, a1, a2, div1, div2, l_t, theta):
    """Thresholding step (v) then the primal update (u) at one pixel; returns new u1, u2 and |du|^2."""
    zero = np.float32(0.0)
    rho = rc + (gx * a1 + gy * a2)
    d1 = zero
    d2 = zero
    lg = l_t * g2
    if rho < -lg:
        d1 = l_t * gx
        d2 = l_t * gy
    elif rho > lg:
        d1 = -l_t * gx
        d2 = -l_t * gy
    elif g2 > FLT_EPSILON:
        fi = -rho / g2
        d1 = fi * gx
        d2 = fi * gy
    n1 = (a1 + d1) + theta * div1
    n2 = (a2 + d2) + theta * div2
    e1 = n1 - a1
    e2 = n2 - a2
    return n1, n2, e1 * e1 + e2 * e2


@njit(inline="always", error_model="numpy")
def _norm(a, b):
    """float32 of the double-precision Euclidean norm of two floats."""
    da = np.float64(a)
    db = np.float64(b)
    return np.float32(math.sqrt(da * da + db * db))


@njit(inline="always", error_model="numpy")
def _row_sum(terms, y, w):
    """float64 sum of one row of float32 terms, four lanes wide (in a fixed order, so deterministic)."""
    s0 = s1 = s2 = s3 = 0.0
    x = 0
    while x + 4 <= w:
        s0 += np.float64(terms[y, x])
        s1 += np.float64(terms[y, x + 1])
        s2 += np.float64(terms[y, x + 2])
        s3 += np.float64(terms[y, x + 3])
        x += 4
    while x < w:
        s0 += np.float64(terms[y, x])
        x += 1
    return (s0 + s1) + (s2 + s3)


@njit(inline="always", error_model="numpy")
def _dual(p11, p12, p21, p22, y, x, u1x, u1y, u2x, u2y, taut):
    """Dual update at one pixel from the forward differences of the new flow."""
    one = np.float32(1.0)
    ng1 = one + taut * _norm(u1x, u1y)
    ng2 = one + taut * _norm(u2x, u2y)
    p11[y, x] = (p11[y, x] + taut * u1x) / ng1
    p12[y, x] = (p12[y, x] + taut * u1y) / ng1
    p21[y, x] = (p21[y, x] + taut * u2x) / ng2
    p22[y, x] = (p22[y, x] + taut * u2y) / ng2


@njit(inline="always", error_model="numpy")
def _primal_row(y, w, i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, terms, row_sums, l_t, theta):
    """Divergence of p, thresholding and primal update of row ``y`` (u in place), its squared changes in
    ``terms`` and their float64 sum in ``row_sums[y]``. OpenCV's divergence takes p12/p22 alone on the first
    row, and on the first column adds p11 to p12 before subtracting the row above."""
    if y > 0:
        div1 = (p11[y, 0] + p12[y, 0]) - p12[y - 1, 0]
        div2 = (p21[y, 0] + p22[y, 0]) - p22[y - 1, 0]
    else:
        div1 = p11[0, 0] + p12[0, 0]
        div2 = p21[0, 0] + p22[0, 0]
    u1[y, 0], u2[y, 0], terms[y, 0] = _primal(i1wx[y, 0], i1wy[y, 0], grad[y, 0], rho_c[y, 0],
                                              u1[y, 0], u2[y, 0], div1, div2, l_t, theta)
    if y > 0:
        for x in range(1, w):
            div1 = (p11[y, x] - p11[y, x - 1]) + (p12[y, x] - p12[y - 1, x])
            div2 = (p21[y, x] - p21[y, x - 1]) + (p22[y, x] - p22[y - 1, x])
            u1[y, x], u2[y, x], terms[y, x] = _primal(i1wx[y, x], i1wy[y, x], grad[y, x], rho_c[y, x],
                                                      u1[y, x], u2[y, x], div1, div2, l_t, theta)
    else:
        for x in range(1, w):
            div1 = (p11[0, x] - p11[0, x - 1]) + p12[0, x]
            div2 = (p21[0, x] - p21[0, x - 1]) + p22[0, x]
            u1[0, x], u2[0, x], terms[0, x] = _primal(i1wx[0, x], i1wy[0, x], grad[0, x], rho_c[0, x],
                                                      u1[0, x], u2[0, x], div1, div2, l_t, theta)
    row_sums[y] = _row_sum(terms, y, w)


@njit(inline="always", error_model="numpy")
def _dual_row(y, h, w, u1, u2, p11, p12, p21, p22, taut):
    """Forward differences of the new u along row ``y`` (zero past the last row and column), dual update."""
    below = min(y + 1, h - 1)
    for x in range(w - 1):
        c1 = u1[y, x]
        c2 = u2[y, x]
        _dual(p11, p12, p21, p22, y, x, u1[y, x + 1] - c1, u1[below, x] - c1,
              u2[y, x + 1] - c2, u2[below, x] - c2, taut)
    c1 = u1[y, w - 1]
    c2 = u2[y, w - 1]
    zero = np.float32(0.0)
    _dual(p11, p12, p21, p22, y, w - 1, zero, u1[below, w - 1] - c1, zero, u2[below, w - 1] - c2, taut)


@njit(inline="always", error_model="numpy")
def _still_above(terms, row_sums, eps, mode, stats):
    """Whether the summed squared change is above ``eps``, decided as OpenCV's serial float32 sum decides
    (``mode`` EXACT or SERIAL) or by the float64 sum alone (FLOAT64)."""
    h, w = terms.shape
    total = 0.0
    for y in range(h):
        total += row_sums[y]
    if mode == FLOAT64:
        return total > eps
    # A serial float32 sum of n non-negative terms lies within g * S of their exact sum S (Higham's bound
    # (n-1)u / (1 - (n-1)u), u = 2^-24), widened here for the float64 sum's own rounding.
    n = float(h * w)
    g = n * 2.0 ** -24 / (1.0 - n * 2.0 ** -24) * 1.0001 + 1e-9
    if mode == EXACT and total * (1.0 - g) > eps:
        return True
    if mode == EXACT and total * (1.0 + g) < eps:
        return False
    serial = np.float32(0.0)  # OpenCV's own sum: float32, one term after another in row-major order
    for y in range(h):
        for x in range(w):
            serial += terms[y, x]
    above = serial > eps
    stats[STAT_SERIAL_SUMS] += 1
    if (total > eps) != above:
        stats[STAT_FLOAT64_FLIPS] += 1
    return above


def _iterate_threads(i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, terms,
                     row_sums, l_t, theta, taut, eps, max_iterations, mode, stats):
    """Up to ``max_iterations`` primal-dual iterations on (u1, u2) and p in place, rows spread over threads,
    stopping once the summed squared change of the flow is at most ``eps``."""
    h, w = u1.shape
    iterations = 0
    above = True
    while above and iterations < max_iterations:
        for y in prange(h):
            _primal_row(y, w, i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, terms, row_sums, l_t, theta)
        for y in prange(h):
            _dual_row(y, h, w, u1, u2, p11, p12, p21, p22, taut)
        iterations += 1
        above = _still_above(terms, row_sums, eps, mode, stats)
    stats[STAT_ITERATIONS] = iterations
    stats[STAT_ABOVE] = 1 if above else 0


def _iterate(i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, terms,
             row_sums, l_t, theta, taut, eps, max_iterations, mode, stats):
    """:func:`_iterate_threads` on the calling thread alone."""
    h, w = u1.shape
    iterations = 0
    above = True
    while above and iterations < max_iterations:
        for y in range(h):
            _primal_row(y, w, i1wx, i1wy, grad, rho_c, u1, u2, p11, p12, p21, p22, terms, row_sums, l_t, theta)
        for y in range(h):
            _dual_row(y, h, w, u1, u2, p11, p12, p21, p22, taut)
        iterations += 1
        above = _still_above(terms, row_sums, eps, mode, stats)
    stats[STAT_ITERATIONS] = iterations
    stats[STAT_ABOVE] = 1 if above else 0
