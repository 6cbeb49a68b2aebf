"""Tests for latentkit.theory: every check holds where the mathematics says it must, its two sides are
computed correctly (compared with SciPy, scikit-learn, torch.distributions or brute force), and bad
inputs raise clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import MultivariateNormal

from latentkit import theory
from latentkit.latent import DiagonalNormal, IsotropicNormal, MultivariateStudentT
from latentkit.theory import Check
from latentkit.theory.gaussian import _gaussian_kl_scipy

torch.set_num_threads(1)


def spd(d: int, seed: int, cond: float = 10.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    ev = torch.logspace(0, math.log10(cond), d, dtype=torch.float64)
    return (q * ev) @ q.T


def vec(d: int, seed: int) -> torch.Tensor:
    return torch.randn(d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------------------------ Check
def test_check_dataclass():
    c = Check("x", 1.0, 2.0, "<=", True, {"a": 1})
    assert c and str(c) == "x: 1 <= 2 -> holds"
    f = Check("y", (1.0), (0.5, 0.75), "in", False)
    assert not f and "FAILS" in str(f) and "[0.5, 0.75]" in str(f)
    with pytest.raises(ValueError, match="relation"):
        Check("z", 1.0, 1.0, "<", True)
    table = theory.checks_table([c, f])
    assert list(table.columns) == ["claim", "lhs", "relation", "rhs", "holds"]
    assert list(table["holds"]) == [True, False]
    with pytest.raises(TypeError, match="Check"):
        theory.checks_table([True])


# ------------------------------------------------------------------------------------ Gaussian KL
def test_scipy_formula_against_scipy_entropy():
    """The reference formula itself: KL = cross-entropy - entropy (entropy from scipy.stats)."""
    d = 5
    m0, m1, s0, s1 = vec(d, 1).numpy(), vec(d, 2).numpy(), spd(d, 3).numpy(), spd(d, 4).numpy()
    h0 = scipy.stats.multivariate_normal(m0, s0).entropy()
    x = scipy.stats.multivariate_normal(m0, s0).rvs(400_000, random_state=0)
    cross = -np.mean(scipy.stats.multivariate_normal(m1, s1).logpdf(x))
    assert _gaussian_kl_scipy(m0, s0, m1, s1) == pytest.approx(cross - h0, abs=0.02)
    dm = m1 - m0
    exact_cross = 0.5 * (
        d * np.log(2 * np.pi)
        + np.linalg.slogdet(s1)[1]
        + np.trace(np.linalg.solve(s1, s0))
        + dm @ np.linalg.solve(s1, dm)
    )
    assert _gaussian_kl_scipy(m0, s0, m1, s1) == pytest.approx(exact_cross - h0, rel=1e-10)


@pytest.mark.parametrize(
    "make",
    [
        lambda m, s: IsotropicNormal(m, torch.tensor(s, dtype=torch.float64)),
        lambda m, s: DiagonalNormal(m, s * torch.linspace(0.5, 2.0, m.numel(), dtype=torch.float64)),
        lambda m, s: MultivariateNormal(m, covariance_matrix=s**2 * spd(m.numel(), 7)),
    ],
    ids=["isotropic", "diagonal", "full"],
)
def test_check_gaussian_kl(make):
    p, q = make(vec(12, 1), 0.7), make(vec(12, 2), 1.3)
    c = theory.check_gaussian_kl(p, q)
    assert c and c.relation == "==" and c.lhs > 0
    assert c.details["torch_full"] == pytest.approx(c.lhs, rel=1e-6)


def test_check_gaussian_kl_kronecker_and_lowrank():
    from torch.distributions import LowRankMultivariateNormal

    from latentkit.latent import MatrixNormal

    m0, m1 = vec(12, 1).reshape(3, 4), vec(12, 2).reshape(3, 4)
    p = MatrixNormal(m0, row_cov=spd(3, 1), col_cov=spd(4, 2))
    q = MatrixNormal(m1, row_cov=spd(3, 3), col_cov=spd(4, 4))
    assert theory.check_gaussian_kl(p, q)
    g = torch.Generator().manual_seed(5)
    f0, f1 = (
        torch.randn(12, 2, generator=g, dtype=torch.float64),
        torch.randn(12, 2, generator=g, dtype=torch.float64),
    )
    lp = LowRankMultivariateNormal(m0.reshape(-1), f0, torch.full((12,), 0.5, dtype=torch.float64))
    lq = LowRankMultivariateNormal(m1.reshape(-1), f1, torch.full((12,), 0.8, dtype=torch.float64))
    assert theory.check_gaussian_kl(lp, lq)


def test_check_gaussian_kl_errors():
    p = IsotropicNormal(vec(4, 1), torch.tensor(1.0, dtype=torch.float64))
    t = MultivariateStudentT(vec(4, 1), df=4.0, scale=1.0)
    with pytest.raises(ValueError, match="Gaussian"):
        theory.check_gaussian_kl(p, t)
    with pytest.raises(ValueError, match="event shapes"):
        theory.check_gaussian_kl(p, IsotropicNormal(vec(5, 1), torch.tensor(1.0, dtype=torch.float64)))
    with pytest.raises(ValueError, match="max_dim"):
        theory.check_gaussian_kl(p, p, max_dim=3)
    with pytest.raises(TypeError, match="Distribution"):
        theory.check_gaussian_kl(p, np.zeros(4))


# ----------------------------------------------------------------------- shared covariance claims
@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 8), cond=st.floats(1.0, 1e4), seed=st.integers(0, 1000))
def test_eigen_sandwich_full_covariance(d, cond, seed):
    s = spd(d, seed, cond)
    p, q = MultivariateNormal(vec(d, seed + 1), s), MultivariateNormal(vec(d, seed + 2), s)
    c = theory.check_eigen_sandwich(p, q)
    assert c and c.relation == "in"
    lo, hi = c.rhs
    ev = np.linalg.eigvalsh(s.numpy())
    dd = (p.mean - q.mean).numpy()
    assert c.lhs == pytest.approx(0.5 * dd @ np.linalg.solve(s.numpy(), dd), rel=1e-8)
    assert lo == pytest.approx(dd @ dd / (2 * ev.max()), rel=1e-8)
    assert hi == pytest.approx(dd @ dd / (2 * ev.min()), rel=1e-8)


def test_eigen_sandwich_is_attained_on_eigenvectors():
    s = spd(5, 0, 100.0)
    ev, U = torch.linalg.eigh(s)
    m = vec(5, 3)
    top = theory.check_eigen_sandwich(MultivariateNormal(m, s), MultivariateNormal(m + U[:, -1], s))
    bottom = theory.check_eigen_sandwich(MultivariateNormal(m, s), MultivariateNormal(m + U[:, 0], s))
    assert top.lhs == pytest.approx(top.rhs[0], rel=1e-9) and top.details["position"] == pytest.approx(
        0, abs=1e-9
    )
    assert bottom.lhs == pytest.approx(bottom.rhs[1], rel=1e-9) and bottom.details[
        "position"
    ] == pytest.approx(1, abs=1e-9)


def test_eigen_sandwich_isotropic_and_diagonal():
    s = torch.tensor(0.5, dtype=torch.float64)
    c = theory.check_eigen_sandwich(IsotropicNormal(vec(30, 1), s), IsotropicNormal(vec(30, 2), s))
    assert c and c.rhs[0] == pytest.approx(c.rhs[1]) == pytest.approx(c.lhs)
    sd = torch.linspace(0.1, 2.0, 30, dtype=torch.float64)
    c = theory.check_eigen_sandwich(DiagonalNormal(vec(30, 1), sd), DiagonalNormal(vec(30, 2), sd))
    assert c and c.details["lmin"] == pytest.approx(0.01) and c.details["lmax"] == pytest.approx(4.0)


def test_shared_covariance_required():
    s = torch.tensor(0.5, dtype=torch.float64)
    p = IsotropicNormal(vec(6, 1), s)
    with pytest.raises(ValueError, match="share one covariance"):
        theory.check_eigen_sandwich(p, IsotropicNormal(vec(6, 2), 2 * s))
    with pytest.raises(ValueError, match="same latent family"):
        theory.check_eigen_sandwich(p, DiagonalNormal(vec(6, 2), s.expand(6)))
    with pytest.raises(ValueError, match="Gaussian"):
        theory.check_ap2_implies_ap3(
            MultivariateStudentT(vec(6, 1), df=4.0, scale=1.0),
            MultivariateStudentT(vec(6, 2), df=4.0, scale=1.0),
        )


def test_implications():
    s = spd(6, 2, 50.0)
    p, q = MultivariateNormal(vec(6, 1), s), MultivariateNormal(vec(6, 2), s)
    a = theory.check_ap2_implies_ap3(p, q)
    b = theory.check_ap3_implies_ap2(p, q)
    assert a and b and a.details["premise"] and b.details["premise"]
    ap2_value = float(((p.mean - q.mean) ** 2).sum())
    assert a.details["ap2"] == pytest.approx(ap2_value)
    assert b.lhs == pytest.approx(ap2_value)
    # a larger tolerance: still holds, not vacuous
    assert theory.check_ap2_implies_ap3(p, q, eps=2 * ap2_value).details["vacuous"] is False
    # a tolerance below the value: premise fails, implication holds vacuously
    v = theory.check_ap3_implies_ap2(p, q, eps=0.5 * b.details["ap3"])
    assert v and v.details["vacuous"] and not v.details["premise"]
    assert v.rhs == pytest.approx(2 * v.details["lmax"] * 0.5 * b.details["ap3"])
    with pytest.raises(ValueError, match="eps"):
        theory.check_ap2_implies_ap3(p, q, eps=-1.0)


@settings(max_examples=25, deadline=None)
@given(
    scale=st.floats(1e-3, 1e3),
    seed=st.integers(0, 1000),
    proj=st.sampled_from(["identity", "chunk_means", "rows"]),
)
def test_isotropic_proportionality(scale, seed, proj):
    w = vec(40, seed).reshape(5, 8)
    v = w * (w.abs() > 0.5)
    c = theory.check_isotropic_proportionality(w, v, scale, projection=proj, num_chunks=7)
    assert c and c.relation == "=="


def test_isotropic_proportionality_errors():
    w = vec(10, 0)
    with pytest.raises(ValueError, match="scale"):
        theory.check_isotropic_proportionality(w, w, 0.0)
    with pytest.raises(ValueError, match="same shape"):
        theory.check_isotropic_proportionality(w, w[:-1], 1.0)


# --------------------------------------------------------------------------------- Student-t, MC
def test_student_t_limit():
    w = vec(50, 0)
    v = w * (w.abs() > 0.7)
    c = theory.check_student_t_limit(w, v, dfs=(2.0, 8.0, 64.0, 1024.0, 16384.0), scale=1.0)
    assert c and c.relation == "~="
    assert c.rhs == pytest.approx(float(((w - v) ** 2).sum()) / 2)
    vals = c.details["values"]
    assert all(a < b for a, b in zip(vals, vals[1:]))  # heavier tails: the shift is harder to see
    assert c.details["relative_gaps"][-1] < 1e-3


def test_student_t_limit_errors_and_failure():
    w = vec(10, 0)
    v = w * (w.abs() > 0.7)
    with pytest.raises(ValueError, match="at least two"):
        theory.check_student_t_limit(w, v, dfs=(4.0,))
    with pytest.raises(ValueError, match="df"):
        theory.check_student_t_limit(w, v, dfs=(4.0, 0.0))
    c = theory.check_student_t_limit(w, v, dfs=(1.0, 2.0), rtol=1e-3)  # df far too small to be close
    assert not c and c.details["relative_gaps"][-1] > 1e-3


def test_monte_carlo_rate():
    d = 5
    p = IsotropicNormal(torch.zeros(d, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    q = IsotropicNormal(torch.full((d,), 0.5, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    c = theory.check_monte_carlo_rate(p, q, sample_sizes=(200, 800, 3200, 12800), repeats=40, seed=0)
    assert c and abs(c.lhs + 0.5) < 0.1
    assert c.details["exact"] == pytest.approx(d * 0.25 / 2)
    assert c.details["estimates"][-1] == pytest.approx(c.details["exact"], abs=0.05)
    with pytest.raises(ValueError, match="at least two"):
        theory.check_monte_carlo_rate(p, q, sample_sizes=(100,))
    with pytest.raises(ValueError, match="distinct"):
        theory.check_monte_carlo_rate(p, q, sample_sizes=(100, 100))
    with pytest.raises(ValueError, match="repeats"):
        theory.check_monte_carlo_rate(p, q, repeats=1)


# ------------------------------------------------------------------------------------------ Pinsker
def test_pinsker_exact_tv_against_quadrature():
    """Shared-covariance Gaussians (d = 1): TV = 1/2 int |p - q| by quadrature."""
    s = torch.tensor(0.8, dtype=torch.float64)
    p = IsotropicNormal(torch.tensor([0.0], dtype=torch.float64), s)
    q = IsotropicNormal(torch.tensor([1.1], dtype=torch.float64), s)
    c = theory.check_pinsker(p, q)
    brute, _ = scipy.integrate.quad(
        lambda x: 0.5 * abs(scipy.stats.norm.pdf(x, 0, 0.8) - scipy.stats.norm.pdf(x, 1.1, 0.8)),
        -20,
        20,
        points=[0.55],
        epsabs=1e-12,
    )
    assert c and c.lhs == pytest.approx(brute, rel=1e-8)
    kl = 1.1**2 / (2 * 0.64)
    assert c.rhs == pytest.approx(math.sqrt(kl / 2)) and c.details["bretagnolle_huber"] == pytest.approx(
        math.sqrt(1 - math.exp(-kl))
    )


def test_pinsker_monte_carlo_path():
    p = DiagonalNormal(
        torch.zeros(3, dtype=torch.float64), torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64)
    )
    q = DiagonalNormal(
        torch.full((3,), 0.3, dtype=torch.float64), torch.tensor([1.5, 0.5, 1.0], dtype=torch.float64)
    )
    c = theory.check_pinsker(p, q, num_samples=100_000)
    assert c and c.details["method"].startswith("Monte Carlo") and 0 < c.lhs < c.rhs
    # 1-D brute force along each independent coordinate is not TV; use a 1-D case for the value
    p1 = DiagonalNormal(torch.zeros(1, dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64))
    q1 = DiagonalNormal(torch.full((1,), 0.3, dtype=torch.float64), torch.tensor([1.5], dtype=torch.float64))
    c1 = theory.check_pinsker(p1, q1, num_samples=200_000)
    brute, _ = scipy.integrate.quad(
        lambda x: 0.5 * abs(scipy.stats.norm.pdf(x, 0, 1) - scipy.stats.norm.pdf(x, 0.3, 1.5)),
        -30,
        30,
        limit=200,
    )
    assert c1.lhs == pytest.approx(brute, abs=4 * c1.details["tv_stderr"] + 1e-4)


def test_pinsker_student_t():
    p = MultivariateStudentT(torch.zeros(4, dtype=torch.float64), df=4.0, scale=1.0)
    q = MultivariateStudentT(torch.full((4,), 0.4, dtype=torch.float64), df=4.0, scale=1.0)
    c = theory.check_pinsker(p, q, num_samples=50_000)
    assert c and c.lhs > 0


# ------------------------------------------------------------------------------- softmax last layer
@pytest.fixture
def softmax_problem():
    g = torch.Generator().manual_seed(0)
    n, d, C = 400, 6, 4
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    W_true = 2 * torch.randn(C, d, generator=g, dtype=torch.float64)
    y = torch.argmax(X @ W_true.T + 0.5 * torch.randn(n, C, generator=g, dtype=torch.float64), dim=1)
    W = W_true * 0.7
    b = 0.1 * torch.randn(C, generator=g, dtype=torch.float64)
    return W, b, X, y


def test_softmax_cross_entropy_against_sklearn(softmax_problem):
    from sklearn.metrics import log_loss

    W, b, X, y = softmax_problem
    probs = scipy.special.softmax((X @ W.T + b).numpy(), axis=1)
    assert theory.softmax_cross_entropy(W, X, y, b) == pytest.approx(
        log_loss(y.numpy(), probs, labels=range(4)), rel=1e-10
    )


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_softmax_loss_bound(softmax_problem, sparsity):
    W, b, X, y = softmax_problem
    Wp = W * (W.abs() > torch.quantile(W.abs(), sparsity))
    c = theory.check_softmax_loss_bound(W, Wp, X, y, b, latent_kwargs={"scale": 0.3})
    assert c and c.details["chain_holds"]
    assert c.lhs == pytest.approx(
        abs(theory.softmax_cross_entropy(W, X, y, b) - theory.softmax_cross_entropy(Wp, X, y, b))
    )
    assert c.rhs == pytest.approx(math.sqrt(2) * float(X.norm(dim=1).mean()) * float((W - Wp).norm()))
    # isotropic latent: lmax = s^2 and AP3 = ||D||^2 / (2 s^2): the AP3 bound equals the Frobenius bound
    assert c.details["ap3_bound"] == pytest.approx(c.rhs, rel=1e-9)
    assert c.lhs <= c.details["per_sample_bound"] <= c.rhs


def test_softmax_loss_bound_folded_bias_and_full_latent(softmax_problem):
    W, b, X, y = softmax_problem
    Wp = W * (W.abs() > 1.0)
    c = theory.check_softmax_loss_bound(W, Wp, X, y, b, bias_pruned=torch.zeros_like(b))
    assert c and c.details["bias_folded"]
    assert c.details["frobenius"] == pytest.approx(float(torch.cat([W - Wp, b[:, None]], 1).norm()))
    sd = torch.linspace(0.2, 1.0, W.numel(), dtype=torch.float64)
    c2 = theory.check_softmax_loss_bound(
        W, Wp, X, y, b, latent_kwargs={"covariance": "diagonal", "scale": sd}
    )
    assert c2 and c2.details["ap3_bound"] >= c2.rhs and c2.details["lmax"] == pytest.approx(1.0)


def test_softmax_loss_bound_is_nearly_tight_for_one_sample():
    """A single sample, a tiny perturbation along the gradient direction: the per-sample bound is
    within the sqrt(2) slack of ||p - e_y|| of the actual gap."""
    W = torch.zeros(2, 1, dtype=torch.float64)
    X = torch.tensor([[1.0]], dtype=torch.float64)
    y = torch.tensor([0])
    Wp = torch.tensor([[-1e-4], [1e-4]], dtype=torch.float64)
    c = theory.check_softmax_loss_bound(W, Wp, X, y)
    # p = (1/2, 1/2), ||p - e_y|| = 1/sqrt2: the gap is 1/2 of the sqrt2 bound here
    assert c and c.lhs / c.details["per_sample_bound"] == pytest.approx(0.5, rel=1e-3)


def test_softmax_errors(softmax_problem):
    W, b, X, y = softmax_problem
    with pytest.raises(ValueError, match="features must be"):
        theory.check_softmax_loss_bound(W, W, X[:, :-1], y)
    with pytest.raises(ValueError, match="labels must lie"):
        theory.check_softmax_loss_bound(W, W, X, y + 10)
    with pytest.raises(TypeError, match="integer"):
        theory.check_softmax_loss_bound(W, W, X, y.double())
    with pytest.raises(ValueError, match="one entry per"):
        theory.check_softmax_loss_bound(W, W, X, y[:-1])
    with pytest.raises(ValueError, match="same shape"):
        theory.check_softmax_loss_bound(W, W[:, :-1], X, y)
    with pytest.raises(ValueError, match="identity projection"):
        theory.check_softmax_loss_bound(W, W, X, y, latent_kwargs={"projection": "chunk_means"})
    with pytest.raises(ValueError, match="bias_pruned given without bias"):
        theory.check_margin_bound(W, W, X, y, None, b)


@pytest.mark.parametrize("sparsity", [0.2, 0.6, 0.95])
def test_margin_bound_against_brute_force(softmax_problem, sparsity):
    W, b, X, y = softmax_problem
    Wp = W * (W.abs() > torch.quantile(W.abs(), sparsity))
    c = theory.check_margin_bound(W, Wp, X, y, b)
    z, zp = (X @ W.T + b).numpy(), (X @ Wp.T + b).numpy()
    acc, accp = np.mean(z.argmax(1) == y.numpy()), np.mean(zp.argmax(1) == y.numpy())
    assert c and c.lhs == pytest.approx(acc - accp) and c.details["flipped_outside"] == 0
    # brute force margin and threshold, sample by sample
    yy = y.numpy()
    risk = 0
    for i in range(len(yy)):
        others = np.delete(z[i], yy[i])
        m = z[i, yy[i]] - others.max()
        risk += (m > 0) and (m <= 2 * np.abs(z[i] - zp[i]).max())
    assert c.rhs == pytest.approx(risk / len(yy))
    assert c.rhs <= c.details["spectral_bound"]


# ------------------------------------------------------------------------------------ Laplace
@pytest.fixture
def trained_softmax():
    """A multinomial logistic regression trained to (near) optimum: the gradient is ~0."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    clf = LogisticRegression(C=1.0, tol=1e-10, max_iter=5000).fit(X, y)
    return (torch.tensor(clf.coef_), torch.tensor(clf.intercept_), torch.tensor(X), torch.tensor(y))


@pytest.mark.parametrize("step", [0.01, 0.05])
def test_laplace_second_order(trained_softmax, step):
    W, b, X, y = trained_softmax
    Wp = W * (W.abs() > torch.quantile(W.abs(), 0.3))
    c = theory.check_laplace_second_order(W, Wp, X, y, b, step=step, rtol=0.5)
    assert c and c.relation == "~="
    # Taylor: the exact quadratic form matches the second-order part of the loss change
    assert c.details["exact_quadratic"] == pytest.approx(c.rhs, rel=20 * step)
    # K-FAC vs exact: the same order of magnitude
    assert 0.3 < c.details["kfac_over_exact"] < 3
    # AP3 scales with step^2
    c2 = theory.check_laplace_second_order(W, Wp, X, y, b, step=2 * step, rtol=0.5)
    assert c2.lhs == pytest.approx(4 * c.lhs, rel=1e-6)


def test_laplace_errors(trained_softmax):
    W, b, X, y = trained_softmax
    with pytest.raises(ValueError, match="step"):
        theory.check_laplace_second_order(W, W, X, y, b, step=0.0)
    with pytest.raises(ValueError, match="damping"):
        theory.check_laplace_second_order(W, W, X, y, b, damping=-1.0)


# ------------------------------------------------------------------------------- decomposition
def test_kl_decomposition_against_scipy():
    from latentkit.latent import MatrixNormal

    m0, m1 = vec(12, 1), vec(12, 2)
    s0, s1 = spd(12, 3), spd(12, 4)
    c = theory.check_kl_decomposition(MultivariateNormal(m0, s0), MultivariateNormal(m1, s1))
    dm = (m1 - m0).numpy()
    mean_term = 0.5 * dm @ np.linalg.solve(s1.numpy(), dm)
    cov_term = _gaussian_kl_scipy(np.zeros(12), s0.numpy(), np.zeros(12), s1.numpy())
    assert c and c.details["mean_term"] == pytest.approx(mean_term, rel=1e-8)
    assert c.details["covariance_term"] == pytest.approx(cov_term, rel=1e-8)
    assert c.details["covariance_term_at_zero"] == pytest.approx(cov_term, rel=1e-8)
    for p, q in [
        (IsotropicNormal(m0, 0.5), IsotropicNormal(m1, 0.8)),
        (DiagonalNormal(m0, torch.linspace(0.5, 1, 12, dtype=torch.float64)), DiagonalNormal(m1, 0.7)),
        (
            MatrixNormal(m0.reshape(3, 4), row_precision=spd(3, 1), col_cov=spd(4, 2)),
            MatrixNormal(m1.reshape(3, 4), row_precision=spd(3, 3), col_cov=spd(4, 4)),
        ),
    ]:
        c = theory.check_kl_decomposition(p, q)
        assert c and c.details["covariance_term"] >= 0 and c.details["mean_term"] > 0
    # shared covariance: the covariance term vanishes
    c = theory.check_kl_decomposition(IsotropicNormal(m0, 0.5), IsotropicNormal(m1, 0.5))
    assert c.details["covariance_term"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="one family"):
        theory.check_kl_decomposition(IsotropicNormal(m0, 0.5), DiagonalNormal(m1, 0.5))


# ------------------------------------------------------------------------- property tests, bounds
@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(5, 60),
    d=st.integers(1, 6),
    C=st.integers(2, 5),
    sparsity=st.floats(0.0, 1.0),
    scale=st.floats(0.1, 10.0),
    seed=st.integers(0, 10_000),
)
def test_softmax_and_margin_bounds_always_hold(n, d, C, sparsity, scale, seed):
    g = torch.Generator().manual_seed(seed)
    X = scale * torch.randn(n, d, generator=g, dtype=torch.float64)
    W = scale * torch.randn(C, d, generator=g, dtype=torch.float64)
    b = torch.randn(C, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (n,), generator=g)
    Wp = W * (torch.rand(C, d, generator=g, dtype=torch.float64) >= sparsity)
    c = theory.check_softmax_loss_bound(W, Wp, X, y, b)
    m = theory.check_margin_bound(W, Wp, X, y, b)
    assert c and c.details["chain_holds"]
    assert m and m.details["flipped_outside"] == 0


def test_gaussian_kl_tiny_values_use_absolute_tolerance():
    """Two nearly identical full-covariance latents in d = 300: KL ~ 1e-9, round-off is absolute."""
    s0 = spd(300, 1, 100.0)
    p = MultivariateNormal(vec(300, 1), s0)
    q = MultivariateNormal(vec(300, 1) + 1e-5, s0 * (1 + 1e-6))
    c = theory.check_gaussian_kl(p, q)
    assert c and 0 <= c.lhs < 1e-6
    strict = theory.check_gaussian_kl(p, q, rtol=1e-15, atol=0.0)
    assert strict.details["atol"] == 0.0
    with pytest.raises(ValueError, match="atol"):
        theory.check_gaussian_kl(p, q, atol=-1.0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_theory_on_cuda(softmax_problem):
    W, b, X, y = (t.cuda() for t in softmax_problem)
    Wp = W * (W.abs() > 1.0)
    c_gpu = theory.check_softmax_loss_bound(W, Wp, X, y, b)
    c_cpu = theory.check_softmax_loss_bound(*(t.cpu() for t in (W, Wp, X, y, b)))
    assert c_gpu and c_gpu.lhs == pytest.approx(c_cpu.lhs, rel=1e-9)
    assert theory.check_margin_bound(W, Wp, X, y, b)
    s = torch.tensor(0.5, dtype=torch.float64, device="cuda")
    assert theory.check_eigen_sandwich(IsotropicNormal(W.reshape(-1), s), IsotropicNormal(Wp.reshape(-1), s))
    with pytest.raises(ValueError, match="device"):
        theory.check_softmax_loss_bound(W, Wp.cpu(), X, y, b)


def test_bias_validation(softmax_problem):
    W, b, X, y = softmax_problem
    with pytest.raises(ValueError, match="bias must have"):
        theory.check_softmax_loss_bound(W, W, X, y, b[:-1])
    with pytest.raises(ValueError, match="bias must have"):
        theory.check_margin_bound(W, W, X, y, b[:-1])
    with pytest.raises(ValueError, match="NaN"):
        theory.check_margin_bound(W, W, X, y, b * float("nan"))
    with pytest.raises(ValueError, match="two classes"):
        theory.check_margin_bound(W[:1], W[:1], X, torch.zeros_like(y))


# --------------------------------------------------------------------------------------------------
# issue 12: hostile inputs at the boundary of theory
# --------------------------------------------------------------------------------------------------
def _iso_pair(dtype=torch.float64):
    w = torch.linspace(-1.0, 1.0, 12, dtype=dtype)
    return IsotropicNormal(w, 0.5), IsotropicNormal(w * (w.abs() > 0.4), 0.5)


_LAW_CHECKS = [
    theory.check_gaussian_kl,
    theory.check_kl_decomposition,
    theory.check_eigen_sandwich,
    theory.check_ap2_implies_ap3,
    theory.check_ap3_implies_ap2,
    theory.check_pinsker,
    lambda p, q: theory.check_monte_carlo_rate(p, q, sample_sizes=(50, 100), repeats=3),
]


@pytest.mark.parametrize("check", _LAW_CHECKS)
@pytest.mark.parametrize("bad", ["p", 1.0, torch.zeros(12), None])
def test_law_checks_refuse_non_laws_naming_the_argument(check, bad):
    p, q = _iso_pair()
    with pytest.raises(TypeError, match="^p must be a torch.distributions.Distribution"):
        check(bad, q)
    with pytest.raises(TypeError, match="^q must be a torch.distributions.Distribution"):
        check(p, bad)


@pytest.mark.parametrize("check", _LAW_CHECKS)
def test_law_checks_refuse_mismatched_dtypes(check):
    p, _ = _iso_pair(torch.float64)
    _, q = _iso_pair(torch.float32)
    with pytest.raises(TypeError, match="p and q must have the same dtype"):
        check(p, q)


def test_covariance_eigen_range_and_checks_table_wrong_types():
    with pytest.raises(TypeError, match="^dist must be"):
        theory.covariance_eigen_range("law")
    with pytest.raises(TypeError, match="needs a Gaussian latent"):
        theory.covariance_eigen_range(MultivariateStudentT(torch.zeros(3, dtype=torch.float64), df=4.0))
    with pytest.raises(TypeError, match="checks must be a sequence"):
        theory.checks_table("claims")
    empty = theory.checks_table([])
    assert len(empty) == 0 and list(empty.columns) == ["claim", "lhs", "relation", "rhs", "holds"]


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda p, q, w: theory.check_gaussian_kl(p, q, rtol=True), "rtol"),
        (lambda p, q, w: theory.check_gaussian_kl(p, q, max_dim=10.0), "max_dim"),
        (lambda p, q, w: theory.check_eigen_sandwich(p, q, rtol="0"), "rtol"),
        (lambda p, q, w: theory.check_ap2_implies_ap3(p, q, eps=True), "eps"),
        (lambda p, q, w: theory.check_ap3_implies_ap2(p, q, eps="0.1"), "eps"),
        (lambda p, q, w: theory.check_isotropic_proportionality(w, w * 0.5, True), "scale"),
        (lambda p, q, w: theory.check_student_t_limit(w, w * 0.5, scale=False), "scale"),
        (lambda p, q, w: theory.check_student_t_limit(w, w * 0.5, dfs="1248"), "dfs"),
        (lambda p, q, w: theory.check_student_t_limit(w, w * 0.5, dfs=(True, 4.0)), "df"),
        (lambda p, q, w: theory.check_monte_carlo_rate(p, q, sample_sizes="ab"), "sample_sizes"),
        (lambda p, q, w: theory.check_monte_carlo_rate(p, q, repeats=True), "repeats"),
        (lambda p, q, w: theory.check_monte_carlo_rate(p, q, seed="0"), "seed"),
        (lambda p, q, w: theory.check_pinsker(p, q, seed=1.5), "seed"),
        (lambda p, q, w: theory.check_pinsker(p, q, num_samples=True), "num_samples"),
    ],
)
def test_booleans_and_strings_are_not_numbers(call, arg):
    p, q = _iso_pair()
    with pytest.raises(TypeError, match=f"^{arg} must be"):
        call(p, q, torch.linspace(-1.0, 1.0, 12, dtype=torch.float64))


def test_student_t_without_a_mean_is_still_a_valid_law():
    """df <= 1 has no mean; the checks use the law's location, not its mean, for device and dtype."""
    loc = torch.linspace(-1.0, 1.0, 4, dtype=torch.float64)
    p, q = MultivariateStudentT(loc, df=1.0), MultivariateStudentT(loc * 0.5, df=1.0)
    c = theory.check_pinsker(p, q, num_samples=20_000, seed=0)
    assert c and c.details["method"].startswith("Monte Carlo")


def test_monte_carlo_rate_of_identical_laws_is_an_error_not_nan():
    p, _ = _iso_pair()
    with pytest.raises(ValueError, match="no rate to measure"):
        theory.check_monte_carlo_rate(p, p, sample_sizes=(50, 100), repeats=3)


def test_linear_checks_wrong_labels_and_overflow(softmax_problem):
    W, b, X, y = softmax_problem
    Wp = W * (W.abs() > 1.0)
    with pytest.raises(TypeError, match="labels must be integer class indices"):
        theory.check_margin_bound(W, Wp, X, ["a"] * len(y))
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        theory.softmax_cross_entropy(W, X, y.double())
    with pytest.raises(TypeError, match="^features must have a floating dtype"):
        theory.check_softmax_loss_bound(W, Wp, X.long(), y)
    with pytest.raises(TypeError, match="latent_kwargs must be a dict"):
        theory.check_softmax_loss_bound(W, Wp, X, y, latent_kwargs=["scale", 1.0])
    for check in (
        theory.check_softmax_loss_bound,
        theory.check_margin_bound,
        theory.check_laplace_second_order,
    ):
        with pytest.raises(ValueError, match="logits X W\\^T \\+ b overflow"):
            check(W * 1e300, Wp, X * 1e300, y)
        with pytest.raises(ValueError, match="^weight must have at least 2 dimension"):
            check(W[0], Wp[0], X, y)
        with pytest.raises(ValueError, match="^features is empty"):
            check(W, Wp, X[:0], y[:0])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_linear_checks_on_weights_that_require_grad(seed, dtype):
    """A weight that requires grad (a Parameter's expression) gives the same Check as its detached copy."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(60, 5, generator=g, dtype=dtype)
    W = torch.randn(3, 5, generator=g, dtype=dtype)
    y = torch.randint(0, 3, (60,), generator=g)
    Wp = W * (W.abs() > 0.5)
    Wg = W.clone().requires_grad_(True) * 1.0  # a non-leaf that requires grad
    for check in (theory.check_softmax_loss_bound, theory.check_margin_bound):
        assert str(check(Wg, Wp, X, y)) == str(check(W, Wp, X, y))
    lap_g = theory.check_laplace_second_order(Wg, Wp, X, y, step=0.1)
    lap = theory.check_laplace_second_order(W, Wp, X, y, step=0.1)
    assert lap_g.lhs == lap.lhs and lap_g.rhs == lap.rhs


def test_labels_must_be_a_vector_and_extreme_scales_do_not_raise_overflowerror(softmax_problem):
    W, b, X, y = softmax_problem
    assert theory.softmax_cross_entropy(W, X, y[:, None]) == theory.softmax_cross_entropy(W, X, y)
    with pytest.raises(ValueError, match="labels must be a vector"):
        theory.softmax_cross_entropy(W, X, y.reshape(2, -1))
    from latentkit.theory.gaussian import _over_two_variances

    assert _over_two_variances(2.0, 0.5) == 2.0 / (2 * 0.25)
    assert _over_two_variances(1e-300, 1e200) == 0.0  # no OverflowError from 1e200 ** 2
    assert _over_two_variances(1e-300, 1e-160) == pytest.approx(0.5e20, rel=1e-12)  # s^2 underflows
