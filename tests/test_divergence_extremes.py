"""Issue 12 (numerics): divergences at the extremes and under hostile input, against 50-digit mpmath.

One block per kind of failure: the Student-t KL over every finite distance, Hellinger / W2 for
nearly equal laws, over/underflow of the Gaussian KL, wrong argument types, Monte Carlo with one
sample; property-based checks (hypothesis) where a property holds over the whole input range.
"""

import math

import mpmath as mp
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as hs
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal

from latentkit.divergence import (
    KLOverflowError,
    hellinger,
    kl,
    kl_monte_carlo,
    student_t_kl_from_distance,
    tv_bounds,
    wasserstein2,
)
from latentkit.divergence.student_t import _asymptotic_ok
from latentkit.latent import DiagonalNormal, IsotropicNormal, MatrixNormal, MultivariateStudentT

F64 = torch.float64


def digits50(f):
    """Run a reference in 50 digits whatever another test module left in ``mp.mp.dps``."""

    def wrapped(*args):
        with mp.workdps(50):
            return +f(*args)

    return wrapped


# ------------------------------------------------------------------------------ 50-digit references
@digits50
def t_kl_quad_ref(delta, nu, d):
    """KL(delta) = n2 int_R (1+2e^y)^{-n2} [1 - (1 + x)^{-nu/2}] dy, x = 2a e^y/(1+2e^y)^2, in 50 digits."""
    delta, nu = mp.mpf(delta), mp.mpf(nu)
    n2 = (nu + d) / 2
    la = 2 * mp.log(delta) - mp.log(nu)

    def g(y):
        lp = mp.log1p(2 * mp.e**y)
        lx = mp.log(2) + la + y - 2 * lp
        return mp.e ** (-n2 * lp) * -mp.expm1(-(nu / 2) * mp.log1p(mp.e**lx))

    knee = -(mp.log(2) + la)
    pts = sorted(
        {knee - 60, knee - 5, knee, knee + 5, mp.mpf(-40), mp.mpf(-5), mp.mpf(0), mp.mpf(5), 60 / n2 + 5}
    )
    return n2 * mp.quad(g, [-mp.inf] + pts + [mp.inf])


@digits50
def t_kl_series_ref(delta, nu, d):
    """The convergent series n2 sum (-1)^{k+1} (nu/2)_k / k! a^k B(k, n2 + k), a < 4, in 50 digits."""
    delta, nu = mp.mpf(delta), mp.mpf(nu)
    n2, m, a = (nu + d) / 2, nu / 2, delta**2 / nu
    return n2 * mp.nsum(
        lambda k: (-1) ** (k + 1) * mp.rf(m, k) / mp.factorial(k) * a**k * mp.beta(k, n2 + k), [1, mp.inf]
    )


def t_kl_ref(delta, nu, d):
    return t_kl_series_ref(delta, nu, d) if mp.mpf(delta) ** 2 / nu < 3 else t_kl_quad_ref(delta, nu, d)


def rel_err(x, ref):
    with mp.workdps(50):
        return float(abs((mp.mpf(x) - ref) / ref))


# ------------------------------------------------------------------------------ Student-t KL
def test_references_agree_with_each_other():
    for delta, nu, d in [(0.5, 0.3, 7), (2.5, 4.0, 100), (1.0, 4.0, 5)]:
        assert rel_err(t_kl_series_ref(delta, nu, d), t_kl_quad_ref(delta, nu, d)) < 1e-30


@pytest.mark.parametrize(
    "delta,nu,d",
    [
        (1e-8, 4.0, 5),  # the tiny delta
        (1e-150, 2.0, 3),
        (3e-3, 0.1, 1),
        (1.9, 1.0, 1),  # just inside the series
        (2.1, 1.0, 1),  # just outside
        (30.0, 4.0, 5),
        (1e3, 0.5, 10),
        (1e5, 10.0, 100),
        (1e8, 4.0, 5),
        (1e10, 4.0, 5),  # the issue: 173.2 instead of 196.6
        (1e12, 0.5, 1),
        (1e20, 0.2, 3000),
        (1e150, 4.0, 5),
        (1e300, 4.0, 5),  # the issue: NaN
        (1.7e308, 0.1, 10000),
    ],
)
def test_student_t_kl_matches_50_digits_everywhere(delta, nu, d):
    val = student_t_kl_from_distance(delta, nu, d)
    assert math.isfinite(val) and val > 0
    assert rel_err(val, t_kl_ref(delta, nu, d)) < 1e-14


@pytest.mark.parametrize("nu,d", [(0.5, 1), (2.0, 2), (3.0, 10), (10.0, 100)])
def test_student_t_kl_is_accurate_on_both_sides_of_the_asymptotic_switch(nu, d):
    # the switch point a* where the remainder estimate a^{-p} log a reaches 1e-17
    lo, hi = 1.0, 1500.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if _asymptotic_ok(mid, nu) else (mid, hi)
    for log_a in (lo * (1 - 1e-9), hi * (1 + 1e-9)):
        delta = math.exp(0.5 * (log_a + math.log(nu)))
        assert rel_err(student_t_kl_from_distance(delta, nu, d), t_kl_ref(delta, nu, d)) < 1e-14


@settings(max_examples=200, deadline=None)
@given(
    log_delta=hs.floats(-150.0, 308.0),
    log_nu=hs.floats(-1.0, 3.0),
    d=hs.integers(1, 10_000),
)
def test_student_t_kl_finite_nonnegative_and_monotone(log_delta, log_nu, d):
    delta, nu = 10.0**log_delta, 10.0**log_nu
    val = student_t_kl_from_distance(delta, nu, d)
    assert math.isfinite(val) and val >= 0
    if delta < 1e307:  # KL grows with the distance
        assert student_t_kl_from_distance(delta * 1.5, nu, d) >= val * (1 - 1e-13)


def test_student_t_kl_tends_to_the_gaussian_value():
    assert student_t_kl_from_distance(0.7, 1e8, 5) == pytest.approx(0.5 * 0.49, rel=1e-6)


@pytest.mark.parametrize("bad", ["1.0", True, None, [1.0], torch.ones(2)])
def test_student_t_distance_refuses_non_numbers(bad):
    with pytest.raises(TypeError, match="delta"):
        student_t_kl_from_distance(bad, 4.0, 5)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_student_t_distance_refuses_bad_values(bad):
    with pytest.raises(ValueError, match="delta"):
        student_t_kl_from_distance(bad, 4.0, 5)


def test_student_t_distance_accepts_numpy_and_tensor_scalars():
    import numpy as np

    ref = student_t_kl_from_distance(2.0, 4.0, 5)
    assert student_t_kl_from_distance(np.float32(2.0), 4.0, 5) == ref
    assert student_t_kl_from_distance(torch.tensor(2.0, dtype=F64), 4.0, 5) == ref


# ------------------------------------------------------------------ Hellinger and W2, nearly equal laws
def _mp(t):
    return mp.matrix(t.tolist())


def _kron_mp(U, V):
    r, c = U.rows, V.rows
    K = mp.matrix(r * c, r * c)
    for i in range(r):
        for j in range(r):
            for k in range(c):
                for m_ in range(c):
                    K[i * c + k, j * c + m_] = U[i, j] * V[k, m_]
    return K


def dense_mp(dist):
    """The covariance in 50 digits, from the law's float64 parameters (exact conversion)."""
    if isinstance(dist, IsotropicNormal):
        return mp.eye(dist.dim) * mp.mpf(float(dist.scale)) ** 2
    if isinstance(dist, DiagonalNormal):
        return mp.diag([mp.mpf(x) ** 2 for x in dist.scale.tolist()])
    if isinstance(dist, LowRankMultivariateNormal):
        W = _mp(dist.cov_factor)
        return W * W.T + mp.diag([mp.mpf(x) for x in dist.cov_diag.tolist()])
    if isinstance(dist, MultivariateNormal):
        L = _mp(dist.scale_tril)
        return L * L.T

    def fac(f, n):
        if f.kind == "identity":
            return mp.eye(n)
        L = _mp(f.L)
        return L * L.T if f.kind == "cov" else (L * L.T) ** -1

    return _kron_mp(fac(dist.row_factor, dist.loc.shape[0]), fac(dist.col_factor, dist.loc.shape[1]))


def hellinger_w2_ref(p, q):
    with mp.workdps(50):
        return _hellinger_w2_ref(p, q)


def _hellinger_w2_ref(p, q):
    Sp, Sq = dense_mp(p), dense_mp(q)
    dm = _mp(q.loc.reshape(-1, 1)) - _mp(p.loc.reshape(-1, 1))
    Sm = (Sp + Sq) / 2
    logbc = (
        mp.log(mp.det(Sp)) / 4 + mp.log(mp.det(Sq)) / 4 - mp.log(mp.det(Sm)) / 2 - (dm.T * Sm**-1 * dm)[0] / 8
    )
    A = mp.sqrtm(Sp)
    C = mp.sqrtm(A * Sq * A)
    tr = lambda X: sum(X[i, i] for i in range(X.rows))  # noqa: E731
    return mp.sqrt(-mp.expm1(logbc)), mp.sqrt((dm.T * dm)[0] + tr(Sp) + tr(Sq) - 2 * tr(C))


def near_pairs(eps):
    """Pairs of laws of every structure whose covariances differ by a factor 1 + eps."""
    g = torch.Generator().manual_seed(0)
    d, r, c = 6, 2, 3
    loc = torch.randn(d, generator=g, dtype=F64)
    A = torch.randn(d, d, generator=g, dtype=F64)
    L = torch.linalg.cholesky(A @ A.T / d + 0.5 * torch.eye(d, dtype=F64))
    f = math.sqrt(1 + eps)
    s = torch.rand(d, generator=g, dtype=F64) + 0.5
    W = torch.randn(d, 2, generator=g, dtype=F64)
    Dg = torch.rand(d, generator=g, dtype=F64) + 0.3
    B = torch.randn(r, r, generator=g, dtype=F64)
    U = B @ B.T + torch.eye(r, dtype=F64)
    Cm = torch.randn(c, c, generator=g, dtype=F64)
    V = Cm @ Cm.T + torch.eye(c, dtype=F64)
    M = loc.reshape(r, c)
    return {
        "isotropic": (IsotropicNormal(loc, 0.7), IsotropicNormal(loc, 0.7 * f)),
        "diagonal": (DiagonalNormal(loc, s), DiagonalNormal(loc, s * f)),
        "full": (MultivariateNormal(loc, scale_tril=L), MultivariateNormal(loc, scale_tril=L * f)),
        "lowrank": (
            LowRankMultivariateNormal(loc, W, Dg),
            LowRankMultivariateNormal(loc, W * f, Dg * (1 + eps)),
        ),
        "kronecker, one factor": (
            MatrixNormal(M, row_cov=U, col_cov=V),
            MatrixNormal(M, row_cov=U * (1 + eps), col_cov=V),
        ),
        "kronecker, both": (
            MatrixNormal(M, row_cov=U, col_cov=V),
            MatrixNormal(M, row_cov=U * (1 + eps), col_cov=V * (1 + eps)),
        ),
        "kronecker, precision": (
            MatrixNormal(M, row_precision=U, col_cov=V),
            MatrixNormal(M, row_precision=U / (1 + eps), col_cov=V * (1 + eps)),
        ),
        "full + mean shift": (
            MultivariateNormal(loc, scale_tril=L),
            MultivariateNormal(loc + 1e-6, scale_tril=L * f),
        ),
    }


@pytest.mark.parametrize("eps", [1e-7, 1e-8, 1e-10])
@pytest.mark.parametrize("kind", list(near_pairs(1e-7)))
def test_hellinger_and_w2_stay_accurate_for_nearly_equal_laws(eps, kind):
    p, q = near_pairs(eps)[kind]
    h_ref, w_ref = hellinger_w2_ref(p, q)
    h, w = hellinger(p, q), wasserstein2(p, q)
    assert 0.0 < h <= 1.0 and w > 0.0
    assert rel_err(h, h_ref) < 1e-12
    assert rel_err(w, w_ref) < 1e-12


def test_hellinger_and_w2_far_apart_match_50_digits():
    p, q = near_pairs(0.7)["full"]
    q = MultivariateNormal(q.loc + 0.3, scale_tril=q.scale_tril)
    h_ref, w_ref = hellinger_w2_ref(p, q)
    assert rel_err(hellinger(p, q), h_ref) < 1e-12
    assert rel_err(wasserstein2(p, q), w_ref) < 1e-12


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    log_sp=hs.lists(hs.floats(-100, 100), min_size=1, max_size=5),
    log_ratio=hs.floats(-30, 30),
    shift=hs.floats(-1e50, 1e50),
)
def test_hellinger_in_unit_interval_and_w2_nonnegative(log_sp, log_ratio, shift):
    sp = torch.tensor([10.0**v for v in log_sp], dtype=F64)
    loc = torch.zeros(len(log_sp), dtype=F64)
    p, q = DiagonalNormal(loc, sp), DiagonalNormal(loc + shift, sp * 10.0**log_ratio)
    h, w = hellinger(p, q), wasserstein2(p, q)
    assert 0.0 <= h <= 1.0
    assert w >= 0.0 and math.isfinite(w)


# ------------------------------------------------------------------------------ Gaussian KL, over/underflow
def diag_kl_ref(sp, sq, dm):
    """Per coordinate ``[(r^2 - 1 - 2 log r) + (dm / s_q)^2] / 2``, in 120 digits (the first bracket
    cancels to ~(r - 1)^2, so 50 digits would not leave 16 for a 1e-32 difference)."""
    with mp.workdps(120):
        tot = mp.mpf(0)
        for a, b, m in zip(sp, sq, dm):
            r = mp.mpf(a) / mp.mpf(b)
            tot += (r**2 - 1 - 2 * mp.log(r)) + (mp.mpf(m) / mp.mpf(b)) ** 2
        return +(tot / 2)


def test_kl_with_an_underflowing_variance_is_the_exact_finite_value():
    z = torch.zeros(1, dtype=F64)
    val = float(kl(IsotropicNormal(z, 1e-200), IsotropicNormal(z, 1.0)))  # ~460 nats, was refused
    assert rel_err(val, diag_kl_ref([1e-200], [1.0], [0.0])) < 1e-14
    val = float(kl(DiagonalNormal(z, 1e-200), DiagonalNormal(z, 1e-170)))
    assert rel_err(val, diag_kl_ref([1e-200], [1e-170], [0.0])) < 1e-14
    val = float(kl(IsotropicNormal(z, 1e-200), IsotropicNormal(z + 3e-200, 1e-200)))  # same tiny scale
    assert val == pytest.approx(4.5, rel=1e-14)


def test_kl_overflow_is_reported_as_overflow():
    z = torch.zeros(3, dtype=F64)
    with pytest.raises(KLOverflowError, match="overflows float64"):
        kl(IsotropicNormal(z + 1e200, 1.0), IsotropicNormal(z - 1e200, 1.0))
    with pytest.raises(ValueError, match="overflow"):  # still a ValueError for existing handlers
        kl(
            MultivariateNormal(z + 1e200, torch.eye(3, dtype=F64)),
            MultivariateNormal(z - 1e200, torch.eye(3, dtype=F64)),
        )
    assert float(kl(IsotropicNormal(z + 1e200, 1.0), IsotropicNormal(z + 1e200, 1.0))) == 0.0


@settings(max_examples=150, deadline=None)
@given(
    log_sp=hs.lists(hs.floats(-300, 300), min_size=1, max_size=4),
    log_ratio=hs.floats(-12, 12),
    z=hs.floats(-1e6, 1e6),
)
def test_diagonal_kl_finite_nonnegative_and_accurate_over_the_float_range(log_sp, log_ratio, z):
    assume(max(log_sp) + log_ratio < 300)  # the mean shift z * s_q must be a finite float
    sp = [10.0**v for v in log_sp]
    sq = [s * 10.0**log_ratio for s in sp]
    dm = [z * b for b in sq]  # a mean shift of z standard deviations of q
    p = DiagonalNormal(torch.zeros(len(sp), dtype=F64), torch.tensor(sp, dtype=F64))
    q = DiagonalNormal(torch.tensor(dm, dtype=F64), torch.tensor(sq, dtype=F64))
    ref = diag_kl_ref(sp, sq, [float(x) for x in q.loc])
    val = float(kl(p, q))
    assert math.isfinite(val) and val >= 0
    if ref > 1e-290:
        assert rel_err(val, ref) < 1e-12


@pytest.mark.parametrize("eps", [1e-7, 1e-10])
def test_diagonal_kl_keeps_relative_accuracy_for_nearly_equal_laws(eps):
    s = torch.tensor([0.3, 1.0, 2.5], dtype=F64)
    p, q = (
        DiagonalNormal(torch.zeros(3, dtype=F64), s),
        DiagonalNormal(torch.zeros(3, dtype=F64), s * (1 + eps)),
    )
    ref = diag_kl_ref(p.scale.tolist(), q.scale.tolist(), [0, 0, 0])
    assert rel_err(float(kl(p, q)), ref) < 1e-12


# ------------------------------------------------------------------------------ wrong argument types
def test_a_string_where_a_law_is_expected_names_the_argument():
    p = IsotropicNormal(torch.zeros(3, dtype=F64), 1.0)
    for f in (kl, hellinger, wasserstein2):
        with pytest.raises(TypeError, match="^p must be"):
            f("law", p)
        with pytest.raises(TypeError, match="^q must be"):
            f(p, "law")
    with pytest.raises(TypeError, match="q is a str"):
        from latentkit.divergence import student_t_kl

        student_t_kl(MultivariateStudentT(torch.zeros(3, dtype=F64), df=4.0), "law")


@pytest.mark.parametrize("bad", [True, "0.1", None])
def test_tv_bounds_refuses_booleans_and_strings(bad):
    with pytest.raises(TypeError, match="kl must be a real number"):
        tv_bounds(bad)


def test_monte_carlo_needs_two_samples_for_a_standard_error():
    p = IsotropicNormal(torch.zeros(2, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="num_samples must be >= 2"):
        kl_monte_carlo(p, p, num_samples=1, repeats=5)
    res = kl_monte_carlo(
        p, IsotropicNormal(torch.ones(2, dtype=F64), 1.0), 2, 1, generator=torch.Generator().manual_seed(0)
    )
    assert math.isfinite(res.stderr) and res.stderr > 0


@digits50
def kl_ref(p, q):
    Sp, Sq = dense_mp(p), dense_mp(q)
    dm = _mp(q.loc.reshape(-1, 1)) - _mp(p.loc.reshape(-1, 1))
    Qi = Sq**-1
    tr = sum((Qi * Sp)[i, i] for i in range(Sp.rows))
    return (tr + (dm.T * Qi * dm)[0] - Sp.rows + mp.log(mp.det(Sq)) - mp.log(mp.det(Sp))) / 2


@pytest.mark.parametrize("eps", [1e-3, 1e-7, 1e-8, 1e-10])
@pytest.mark.parametrize("kind", list(near_pairs(1e-7)))
def test_gaussian_kl_keeps_relative_accuracy_for_nearly_equal_covariances(eps, kind):
    p, q = near_pairs(eps)[kind]
    val = float(kl(p, q))
    assert val > 0
    assert rel_err(val, kl_ref(p, q)) < 1e-13


@pytest.mark.parametrize("s", [1e-200, 1e-100, 1e100, 1e200])
def test_structured_laws_at_extreme_scales_are_rescaled_not_refused(s):
    # KL and Hellinger are invariant under a common scaling, W2 scales with it
    z, eye = torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64)
    ref_p = MultivariateNormal(z, scale_tril=eye)
    ref_q = MultivariateNormal(z + 1.0, scale_tril=1.5 * eye)
    M = torch.zeros(1, 3, dtype=F64)
    pairs = [
        (MultivariateNormal(z, scale_tril=s * eye), MultivariateNormal(z + s, scale_tril=1.5 * s * eye)),
        (
            LowRankMultivariateNormal(z, torch.zeros(3, 1, dtype=F64), torch.full((3,), s * s, dtype=F64)),
            LowRankMultivariateNormal(
                z + s, torch.zeros(3, 1, dtype=F64), torch.full((3,), 2.25 * s * s, dtype=F64)
            ),
        )
        if 1e-150 < s < 1e150
        else None,
        (MatrixNormal(M, col_scale_tril=s * eye), MatrixNormal(M + s, col_scale_tril=1.5 * s * eye)),
    ]
    for pair in filter(None, pairs):
        p, q = pair
        assert float(kl(p, q)) == pytest.approx(float(kl(ref_p, ref_q)), rel=1e-13)
        assert hellinger(p, q) == pytest.approx(hellinger(ref_p, ref_q), rel=1e-13)
        assert wasserstein2(p, q) == pytest.approx(s * wasserstein2(ref_p, ref_q), rel=1e-13)
