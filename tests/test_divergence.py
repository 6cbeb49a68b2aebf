"""Tests of latentkit.divergence against torch.distributions, scipy, mpmath and Monte Carlo."""

import itertools
import math

import numpy as np
import pytest
import scipy.linalg as sla
import scipy.stats as st
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal, kl_divergence

from latentkit.divergence import (
    MonteCarloKL,
    TVBounds,
    UnsupportedKLError,
    gaussian_kl,
    hellinger,
    kl,
    kl_monte_carlo,
    student_t_kl,
    student_t_kl_from_distance,
    tv_bounds,
    wasserstein2,
)
from latentkit.latent import DiagonalNormal, IsotropicNormal, MatrixNormal, MultivariateStudentT, latent_space

F64 = torch.float64
R, C = 3, 4
D = R * C


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def rpd(n, seed, ridge=0.5):
    B = torch.randn(n, n, generator=gen(seed), dtype=F64)
    return B @ B.T / n + ridge * torch.eye(n, dtype=F64)


KINDS = ["iso", "diag", "full", "lowrank", "kron", "kron_prec", "kron_ident"]


def make(kind, seed):
    g = gen(seed)
    m = torch.randn(D, generator=g, dtype=F64)
    if kind == "iso":
        return IsotropicNormal(m, 0.6 + float(torch.rand((), generator=g)))
    if kind == "diag":
        return DiagonalNormal(m, 0.4 + torch.rand(D, generator=g, dtype=F64))
    if kind == "full":
        return MultivariateNormal(m, covariance_matrix=rpd(D, seed + 100))
    if kind == "lowrank":
        return LowRankMultivariateNormal(
            m, 0.5 * torch.randn(D, 2, generator=g, dtype=F64), 0.3 + torch.rand(D, generator=g, dtype=F64)
        )
    if kind == "kron":
        return MatrixNormal(m.reshape(R, C), row_cov=rpd(R, seed + 1), col_cov=rpd(C, seed + 2))
    if kind == "kron_prec":
        return MatrixNormal(
            m.reshape(R, C),
            row_precision=rpd(R, seed + 3),
            col_scale_tril=torch.linalg.cholesky(rpd(C, seed + 4)),
        )
    return MatrixNormal(m.reshape(R, C), col_precision=rpd(C, seed + 5))


def dense_np(p):
    """(mean, covariance) as numpy arrays, built independently of latentkit's KL code."""
    if isinstance(p, IsotropicNormal):
        return p.loc.numpy(), float(p.scale) ** 2 * np.eye(D)
    if isinstance(p, DiagonalNormal):
        return p.loc.numpy(), np.diag(p.scale.numpy() ** 2)
    if isinstance(p, MatrixNormal):
        return p.loc.numpy().reshape(-1), np.kron(p.row_cov.numpy(), p.col_cov.numpy())
    return p.loc.numpy(), p.covariance_matrix.numpy()


def kl_np(p, q):
    m0, S0 = dense_np(p)
    m1, S1 = dense_np(q)
    S1i = np.linalg.inv(S1)
    dm = m1 - m0
    return 0.5 * (
        np.trace(S1i @ S0) + dm @ S1i @ dm - len(m0) + np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]
    )


def torch_dense(p):
    m, S = dense_np(p)
    return MultivariateNormal(torch.tensor(m), covariance_matrix=torch.tensor(S))


# ------------------------------------------------------------------------------------------ Gaussian KL
@pytest.mark.parametrize("kp,kq", list(itertools.product(KINDS, KINDS)))
def test_gaussian_kl_all_pairs_match_torch_dense_and_numpy(kp, kq):
    p, q = make(kp, 1), make(kq, 2)
    val = kl_divergence(p, q)  # dispatched through torch's registry
    assert val.dtype == F64 and val.shape == ()
    ref_torch = float(kl_divergence(torch_dense(p), torch_dense(q)))
    assert float(val) == pytest.approx(ref_torch, rel=1e-9)
    assert float(val) == pytest.approx(kl_np(p, q), rel=1e-9)
    assert float(kl(p, q)) == pytest.approx(ref_torch, rel=1e-9)
    assert float(kl(p, p)) == 0.0


def test_shared_covariance_gives_half_mahalanobis():
    p, q = make("kron", 1), make("kron", 1)
    q = MatrixNormal(q.loc + 1.0, row_cov=p.row_cov, col_cov=p.col_cov)
    _, S = dense_np(p)
    dm = np.ones(D)
    assert float(gaussian_kl(p, q)) == pytest.approx(0.5 * dm @ np.linalg.solve(S, dm), rel=1e-10)


def test_large_layer_without_dense_matrices():
    # VGG16 / CIFAR100 last layer: d = 100 x 4096 = 409,600; a d x d float64 matrix would be 1.3 TB
    r, c = 100, 4096
    w = torch.randn(r, c, generator=gen(), dtype=F64) * 0.01
    wt = w * (w.abs() > 0.01).to(F64)
    dm2 = float(((w - wt) ** 2).sum())
    s = 0.05
    assert float(kl(latent_space(w, scale=s), latent_space(wt, scale=s))) == pytest.approx(
        dm2 / (2 * s * s), rel=1e-12
    )
    assert float(
        kl(latent_space(w, covariance="diagonal", scale=s), latent_space(wt, covariance="diagonal", scale=s))
    ) == pytest.approx(dm2 / (2 * s * s), rel=1e-12)
    assert float(
        kl(
            latent_space(w, covariance="kronecker", scale=s),
            latent_space(wt, covariance="kronecker", scale=s),
        )
    ) == pytest.approx(dm2 / (2 * s * s), rel=1e-12)
    # different scales: trace + log-det terms, isotropic vs diagonal vs kronecker
    U = rpd(r, 9)
    p = MatrixNormal(w, row_cov=U)
    q = IsotropicNormal(wt.reshape(-1), 0.7)
    ref = 0.5 * (
        c * float(torch.trace(U)) / 0.49
        + dm2 / 0.49
        - r * c
        + r * c * math.log(0.49)
        - c * float(torch.logdet(U))
    )
    assert float(kl(p, q)) == pytest.approx(ref, rel=1e-10)


def test_kl_errors():
    p = IsotropicNormal(torch.zeros(4, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="different event sizes"):
        kl(p, IsotropicNormal(torch.zeros(5, dtype=F64), 1.0))
    with pytest.raises(ValueError, match="same event shape"):
        kl(MatrixNormal(torch.zeros(2, 3)), MatrixNormal(torch.zeros(3, 2)))
    with pytest.raises(ValueError, match="batched laws"):
        kl(p, MultivariateNormal(torch.zeros(2, 4), torch.eye(4)))
    with pytest.raises(UnsupportedKLError, match="kl_monte_carlo"):
        kl(p, MultivariateStudentT(torch.zeros(4, dtype=F64), df=3.0))
    with pytest.raises(ValueError, match="kl_monte_carlo"):
        kl_divergence(MultivariateStudentT(torch.zeros(4, dtype=F64), df=3.0), p)
    with pytest.raises(ValueError, match="not positive definite"):
        latent_space(torch.zeros(2, 2), covariance="kronecker").__class__(
            torch.zeros(2, 2, dtype=F64), row_cov=torch.zeros(2, 2, dtype=F64)
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_mix_and_cuda():
    a = IsotropicNormal(torch.zeros(4, dtype=F64, device="cuda"), 1.0)
    b = IsotropicNormal(torch.ones(4, dtype=F64), 1.0)
    with pytest.raises(ValueError, match="one device"):
        kl(a, b)
    c = IsotropicNormal(torch.ones(4, dtype=F64, device="cuda"), 1.0)
    assert kl(a, c).device.type == "cuda"
    assert float(kl(a, c)) == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------ properties
diag_vals = hs.lists(hs.floats(1e-6, 1e3), min_size=3, max_size=3)


@settings(max_examples=40, deadline=None)
@given(vp=diag_vals, vq=diag_vals, mshift=hs.floats(-5, 5), kind=hs.sampled_from(["diag", "lowrank", "kron"]))
def test_property_kl_nonnegative_zero_on_self_and_finite(vp, vq, mshift, kind):
    d = 6
    if kind == "diag":
        p = DiagonalNormal(torch.zeros(d, dtype=F64), torch.tensor(vp * 2, dtype=F64).sqrt())
        q = DiagonalNormal(torch.full((d,), mshift, dtype=F64), torch.tensor(vq * 2, dtype=F64).sqrt())
    elif kind == "lowrank":
        W = torch.randn(d, 2, generator=gen(1), dtype=F64)
        p = LowRankMultivariateNormal(torch.zeros(d, dtype=F64), W, torch.tensor(vp * 2, dtype=F64))
        q = LowRankMultivariateNormal(
            torch.full((d,), mshift, dtype=F64), 2 * W, torch.tensor(vq * 2, dtype=F64)
        )
    else:
        p = MatrixNormal(
            torch.zeros(2, 3, dtype=F64),
            row_cov=torch.diag(torch.tensor(vp[:2], dtype=F64)),
            col_cov=torch.diag(torch.tensor(vp, dtype=F64)),
        )
        q = MatrixNormal(
            torch.full((2, 3), mshift, dtype=F64),
            row_cov=torch.diag(torch.tensor(vq[:2], dtype=F64)),
            col_cov=torch.diag(torch.tensor(vq, dtype=F64)),
        )
    v = float(kl(p, q))
    assert math.isfinite(v) and v >= 0
    assert float(kl(p, p)) == 0.0
    assert v == pytest.approx(
        kl_np(p, q) if kind != "lowrank" else float(kl_divergence(p, q)), rel=1e-6, abs=1e-9
    )


@settings(max_examples=25, deadline=None)
@given(eps=hs.floats(1e-12, 1e-3), seed=hs.integers(0, 1000))
def test_property_near_singular_covariances_stay_finite(eps, seed):
    # rank-one-plus-eps covariances: condition numbers up to 1e12
    u = torch.randn(5, 1, generator=gen(seed), dtype=F64)
    S = u @ u.T + eps * torch.eye(5, dtype=F64)
    p = MultivariateNormal(torch.zeros(5, dtype=F64), covariance_matrix=S)
    q = LowRankMultivariateNormal(torch.full((5,), 1e-3, dtype=F64), u, torch.full((5,), eps, dtype=F64))
    r = IsotropicNormal(torch.zeros(5, dtype=F64), math.sqrt(eps))
    for a, b in [(p, q), (q, p), (q, r), (r, q), (q, q)]:
        v = float(kl(a, b))
        assert math.isfinite(v) and v >= 0


# ------------------------------------------------------------------------------------------ Student-t
def test_student_t_kl_matches_high_precision_integral():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 30

    def ref(delta, nu, d):
        delta, nu, d = mp.mpf(delta), mp.mpf(nu), mp.mpf(d)
        g = lambda t: (  # noqa: E731
            (1 + 2 * t) ** (-(nu + d) / 2)
            * (1 - (1 + 2 * delta**2 * t / (nu * (1 + 2 * t) ** 2)) ** (-nu / 2))
            / t
        )
        s, a = 1 / (nu + d), nu / delta**2
        pts = sorted({mp.mpf(0), s, 10 * s, a, 10 * a, 100 * s, mp.mpf(1), mp.inf})
        return float((nu + d) / 2 * mp.quad(g, pts))

    for d, nu, delta in [
        (1, 0.5, 0.3),
        (100, 4.0, 0.02),
        (100, 4.0, 3.0),
        (10, 30.0, 40.0),
        (409600, 4.0, 1.0),
    ]:
        assert student_t_kl_from_distance(delta, nu, d) == pytest.approx(ref(delta, nu, d), rel=1e-8)


@pytest.mark.parametrize("d,df,delta", [(1, 3.0, 1.0), (3, 4.0, 1.5), (10, 2.5, 3.0)])
def test_student_t_kl_matches_monte_carlo_with_scipy_sampler(d, df, delta):
    # independent of latentkit's sampler and log_prob: scipy.stats.multivariate_t
    L = torch.linalg.cholesky(rpd(d, d))
    z = torch.zeros(d, dtype=F64)
    z[0] = delta
    mq = L @ z  # Mahalanobis distance delta between the locations
    p = MultivariateStudentT(torch.zeros(d, dtype=F64), L, df)
    q = MultivariateStudentT(mq, L, df)
    exact = float(student_t_kl(p, q))
    S = (L @ L.T).numpy()
    sp, sq = st.multivariate_t(np.zeros(d), S, df=df), st.multivariate_t(mq.numpy(), S, df=df)
    x = sp.rvs(size=400_000, random_state=np.random.default_rng(d))
    lr = sp.logpdf(x) - sq.logpdf(x)
    mc, se = lr.mean(), lr.std() / math.sqrt(len(lr))
    assert abs(exact - mc) < 5 * se
    assert float(kl_divergence(p, q)) == exact  # registered
    assert float(student_t_kl(q, p)) == pytest.approx(exact, rel=1e-12)  # symmetric


def test_student_t_kl_gaussian_limit_and_isotropic_equivalence():
    d, delta = 100, 0.8
    assert student_t_kl_from_distance(delta, 1e9, d) == pytest.approx(0.5 * delta**2, rel=1e-6)
    vals = [student_t_kl_from_distance(delta, nu, d) for nu in (1.0, 4.0, 30.0, 1e3)]
    assert all(v < 0.5 * delta**2 for v in vals)  # heavier tails, smaller KL at this delta
    assert vals == sorted(vals)
    g = gen(3)
    a, b = torch.randn(d, generator=g, dtype=F64), torch.randn(d, generator=g, dtype=F64)
    iso = float(kl(MultivariateStudentT(a, df=4.0, scale=2.0), MultivariateStudentT(b, df=4.0, scale=2.0)))
    tri = float(
        kl(
            MultivariateStudentT(a, 2.0 * torch.eye(d, dtype=F64), 4.0),
            MultivariateStudentT(b, df=4.0, scale=2.0),
        )
    )
    assert iso == pytest.approx(tri, rel=1e-12)
    assert iso == pytest.approx(student_t_kl_from_distance(float((a - b).norm()) / 2.0, 4.0, d), rel=1e-12)
    assert float(kl(MultivariateStudentT(a, df=4.0), MultivariateStudentT(a, df=4.0))) == 0.0


def test_student_t_kl_errors():
    a = torch.zeros(3, dtype=F64)
    with pytest.raises(UnsupportedKLError, match="equal df.*kl_monte_carlo"):
        kl(MultivariateStudentT(a, df=3.0), MultivariateStudentT(a, df=4.0))
    with pytest.raises(ValueError, match="equal scale.*kl_monte_carlo"):
        kl_divergence(MultivariateStudentT(a, df=3.0, scale=1.0), MultivariateStudentT(a, df=3.0, scale=2.0))
    with pytest.raises(ValueError, match="delta must be a finite number"):
        student_t_kl_from_distance(-1.0, 4.0, 3)
    with pytest.raises(ValueError, match="df must be a positive"):
        student_t_kl_from_distance(1.0, 0.0, 3)
    with pytest.raises(ValueError, match="dim must be >= 1"):
        student_t_kl_from_distance(1.0, 4.0, 0)


# ------------------------------------------------------------------------------------------ Monte Carlo
def test_kl_monte_carlo_matches_closed_form_and_is_reproducible():
    p, q = make("kron", 1), make("lowrank", 2)
    exact = float(kl(p, q))
    res = kl_monte_carlo(p, q, num_samples=20_000, repeats=5, generator=gen(7), batch_size=3000)
    assert isinstance(res, MonteCarloKL) and res.repeats == 5 and res.per_repeat.shape == (5,)
    assert abs(res.estimate - exact) < 5 * res.stderr
    again = kl_monte_carlo(p, q, num_samples=20_000, repeats=5, generator=gen(7), batch_size=3000)
    assert again.estimate == res.estimate
    one = kl_monte_carlo(make("full", 3), make("iso", 4), num_samples=50_000, repeats=1, generator=gen(8))
    assert abs(one.estimate - float(kl(make("full", 3), make("iso", 4)))) < 5 * one.stderr


def test_kl_monte_carlo_student_t_different_scales_runs():
    a = torch.zeros(4, dtype=F64)
    p, q = MultivariateStudentT(a, df=4.0, scale=1.0), MultivariateStudentT(a + 0.5, df=5.0, scale=1.3)
    res = kl_monte_carlo(p, q, num_samples=20_000, repeats=2, generator=gen(0))
    assert res.estimate > 0 and res.stderr > 0


def test_kl_monte_carlo_stderr_shrinks_like_one_over_sqrt_n():
    p, q = make("iso", 1), make("diag", 2)
    small = kl_monte_carlo(p, q, num_samples=2_000, repeats=1, generator=gen(1))
    big = kl_monte_carlo(p, q, num_samples=32_000, repeats=1, generator=gen(2))
    assert big.stderr / small.stderr == pytest.approx(0.25, rel=0.15)


def test_kl_monte_carlo_errors():
    p = make("iso", 1)
    with pytest.raises(ValueError, match="num_samples must be >= 1"):
        kl_monte_carlo(p, p, num_samples=0)
    with pytest.raises(ValueError, match="different event sizes"):
        kl_monte_carlo(p, IsotropicNormal(torch.zeros(3, dtype=F64), 1.0), 10, 1)
    with pytest.raises(TypeError, match="Distribution"):
        kl_monte_carlo(p, "q", 10, 1)
    with pytest.raises(TypeError, match="generator"):
        kl_monte_carlo(p, p, 10, 1, generator=0)


# ---------------------------------------------------------------------------------- Hellinger / W2 / TV
def hellinger_np(p, q):
    m0, S0 = dense_np(p)
    m1, S1 = dense_np(q)
    Sm = 0.5 * (S0 + S1)
    dm = m1 - m0
    bc = (
        np.linalg.det(S0) ** 0.25
        * np.linalg.det(S1) ** 0.25
        / np.linalg.det(Sm) ** 0.5
        * np.exp(-0.125 * dm @ np.linalg.solve(Sm, dm))
    )
    return math.sqrt(max(1 - bc, 0.0))


def w2_np(p, q):
    m0, S0 = dense_np(p)
    m1, S1 = dense_np(q)
    r0 = sla.sqrtm(S0)
    cross = np.real(sla.sqrtm(r0 @ S1 @ r0))
    return math.sqrt(max(((m0 - m1) ** 2).sum() + np.trace(S0) + np.trace(S1) - 2 * np.trace(cross), 0.0))


PAIRS = [
    ("iso", "diag"),
    ("diag", "diag"),
    ("iso", "full"),
    ("full", "lowrank"),
    ("kron", "kron"),
    ("kron_prec", "kron_ident"),
    ("kron", "diag"),
    ("lowrank", "kron_prec"),
]


@pytest.mark.parametrize("kp,kq", PAIRS)
def test_hellinger_and_w2_match_scipy_dense(kp, kq):
    p, q = make(kp, 5), make(kq, 6)
    # scale the means down so that H is not saturated at 1
    p.loc = p.loc * 0.1
    q.loc = q.loc * 0.1
    h = hellinger(p, q)
    assert 0 <= h <= 1
    assert h == pytest.approx(hellinger_np(p, q), rel=1e-8)
    assert wasserstein2(p, q) == pytest.approx(w2_np(p, q), rel=1e-7)
    assert hellinger(p, p) == 0.0 and wasserstein2(p, p) == 0.0


def test_hellinger_kron_shared_factor_matches_dense():
    p = make("kron", 1)
    q = MatrixNormal(p.loc + 0.1, row_cov=p.row_cov, col_cov=rpd(C, 77))
    p2 = MatrixNormal(p.loc, row_cov=p.row_cov, col_cov=p.col_cov)
    assert hellinger(p2, q) == pytest.approx(hellinger_np(p2, q), rel=1e-8)
    q2 = MatrixNormal(p.loc - 0.1, row_cov=rpd(R, 78), col_cov=p.col_cov)
    assert hellinger(p2, q2) == pytest.approx(hellinger_np(p2, q2), rel=1e-8)


def test_hellinger_w2_large_and_unsupported():
    w = torch.randn(100, 4096, generator=gen(), dtype=F64)
    p, q = latent_space(w, scale=2.0), latent_space(w + 0.001, scale=2.0)
    assert hellinger(p, q) == pytest.approx(math.sqrt(-math.expm1(-0.125 * 409600 * 1e-6 / 4)), rel=1e-10)
    assert wasserstein2(p, q) == pytest.approx(math.sqrt(409600 * 1e-6), rel=1e-10)
    big = LowRankMultivariateNormal(
        torch.zeros(5000, dtype=F64), torch.ones(5000, 1, dtype=F64), torch.ones(5000, dtype=F64)
    )
    with pytest.raises(ValueError, match="dense d x d"):
        hellinger(big, IsotropicNormal(torch.zeros(5000, dtype=F64), 1.0))
    with pytest.raises(TypeError, match="not a Gaussian"):
        wasserstein2(
            MultivariateStudentT(torch.zeros(3, dtype=F64), df=3.0),
            MultivariateStudentT(torch.zeros(3, dtype=F64), df=3.0),
        )


def test_tv_bounds():
    b = tv_bounds(0.02)
    assert isinstance(b, TVBounds)
    assert b.pinsker == pytest.approx(0.1)
    assert b.bretagnolle_huber == pytest.approx(math.sqrt(1 - math.exp(-0.02)))
    assert b.best == min(b)
    pin, bh = tv_bounds(torch.tensor(8.0))
    assert pin == 2.0 and bh < 1 and tv_bounds(8.0).best == bh
    assert tv_bounds(float("inf")).best == 1.0
    # the true TV between N(0,1) and N(mu,1) is 2 Phi(mu/2) - 1 and lies below both bounds
    for mu in (0.1, 1.0, 4.0):
        tv = 2 * st.norm.cdf(mu / 2) - 1
        b = tv_bounds(mu * mu / 2)
        assert tv <= b.pinsker + 1e-12 and tv <= b.bretagnolle_huber + 1e-12
    with pytest.raises(ValueError, match="kl must be >= 0"):
        tv_bounds(-0.1)
    with pytest.raises(ValueError, match="kl must be >= 0"):
        tv_bounds(float("nan"))
    with pytest.raises(TypeError, match="real number"):
        tv_bounds("big")


def test_kronecker_trace_blocked_path_matches_dense_factors():
    # c = 600 > the 512-row blocks of the memory-bounded triangular solve
    r, c = 2, 600
    g = gen(21)
    Lv1 = torch.tril(torch.randn(c, c, generator=g, dtype=F64), -1) * 0.02
    Lv1.diagonal().copy_(0.5 + torch.rand(c, generator=g, dtype=F64))
    Lv2 = torch.tril(torch.randn(c, c, generator=g, dtype=F64), -1) * 0.02
    Lv2.diagonal().copy_(0.5 + torch.rand(c, generator=g, dtype=F64))
    U1, U2 = rpd(r, 22), rpd(r, 23)
    M = torch.randn(r, c, generator=g, dtype=F64)
    p = MatrixNormal(M, row_cov=U1, col_scale_tril=Lv1)
    q = MatrixNormal(M + 0.1, row_cov=U2, col_scale_tril=Lv2)
    V1, V2 = Lv1 @ Lv1.T, Lv2 @ Lv2.T
    tr = float(torch.trace(torch.linalg.solve(U2, U1))) * float(torch.trace(torch.linalg.solve(V2, V1)))
    dm = torch.full((r, c), 0.1, dtype=F64)
    maha = float(torch.trace(torch.linalg.solve(U2, dm) @ torch.linalg.solve(V2, dm.T)))
    ld = lambda U, V: c * float(torch.logdet(U)) + r * float(torch.logdet(V))  # noqa: E731
    ref = 0.5 * (tr + maha - r * c + ld(U2, V2) - ld(U1, V1))
    assert float(kl(p, q)) == pytest.approx(ref, rel=1e-9)
