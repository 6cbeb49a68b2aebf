"""Tests of latentkit.latent against independent computations (numpy, scipy, sklearn, autograd)."""

import numpy as np
import pytest
import scipy.stats as st
import torch
from hypothesis import given, settings
from hypothesis import strategies as hs
from torch.distributions import LowRankMultivariateNormal, MultivariateNormal

import latentkit.divergence  # noqa: F401  (registers the KL pairs with torch)
from latentkit.latent import (
    DiagonalNormal,
    IsotropicNormal,
    MatrixNormal,
    MultivariateStudentT,
    fit_laplace_linear,
    fit_swag,
    fold_bias,
    latent_space,
    ledoit_wolf,
    project,
    sample_standard_gamma,
)

F64 = torch.float64


def rpd(n, seed, ridge=0.5):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(n, n, generator=g, dtype=F64)
    return B @ B.T / n + ridge * torch.eye(n, dtype=F64)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------ projections
def test_project_identity_and_rows():
    w = torch.randn(4, 3, 2, generator=gen())
    assert torch.equal(project(w), w.reshape(-1))
    assert torch.equal(project(w, "rows"), w.reshape(4, 6))
    assert project(w, "rows").shape == (4, 6)


@settings(max_examples=40, deadline=None)
@given(d=hs.integers(1, 60), k=hs.integers(1, 60))
def test_project_chunk_means_matches_numpy_array_split(d, k):
    if k > d:
        with pytest.raises(ValueError, match="exceeds the number of weights"):
            project(torch.zeros(d), "chunk_means", k)
        return
    x = np.random.default_rng(d * 100 + k).standard_normal(d)
    ref = np.array([c.mean() for c in np.array_split(x, k)])
    got = project(torch.tensor(x), "chunk_means", k).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14)


def test_project_chunk_remainder_policy_first_chunks_get_extra():
    # d = 10, k = 3 -> chunks of sizes 4, 3, 3
    out = project(torch.arange(10.0), "chunk_means", 3)
    assert torch.allclose(out, torch.tensor([1.5, 5.0, 8.0]))


def test_project_errors():
    with pytest.raises(ValueError, match="unknown projection"):
        project(torch.zeros(3), "pca")
    with pytest.raises(ValueError, match="NaN or infinite"):
        project(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="num_chunks must be >= 1"):
        project(torch.zeros(3), "chunk_means", 0)
    with pytest.raises(TypeError, match="floating dtype"):
        project(torch.arange(3))
    with pytest.raises(TypeError, match="torch.Tensor or array-like"):
        project("weights")


def test_fold_bias():
    W, b = torch.randn(3, 2, generator=gen()), torch.randn(3, generator=gen(1))
    Wb = fold_bias(W, b)
    assert Wb.shape == (3, 3) and torch.equal(Wb[:, 2], b)
    with pytest.raises(ValueError, match=r"weight must be \(C, in\)"):
        fold_bias(W, torch.randn(4))


# ------------------------------------------------------------------------------------------ Gaussians
def test_isotropic_and_diagonal_match_scipy():
    d = 7
    loc = torch.randn(d, generator=gen(), dtype=F64)
    x = torch.randn(5, d, generator=gen(1), dtype=F64)
    iso = IsotropicNormal(loc, 0.7)
    ref = st.multivariate_normal(loc.numpy(), 0.49 * np.eye(d))
    np.testing.assert_allclose(iso.log_prob(x).numpy(), ref.logpdf(x.numpy()), rtol=1e-12)
    np.testing.assert_allclose(float(iso.entropy()), ref.entropy(), rtol=1e-12)
    s = 0.3 + torch.rand(d, generator=gen(2), dtype=F64)
    dia = DiagonalNormal(loc, s)
    ref = st.multivariate_normal(loc.numpy(), np.diag(s.numpy() ** 2))
    np.testing.assert_allclose(dia.log_prob(x).numpy(), ref.logpdf(x.numpy()), rtol=1e-12)
    np.testing.assert_allclose(float(dia.entropy()), ref.entropy(), rtol=1e-12)
    assert iso.event_shape == (d,) and iso.batch_shape == ()


def test_sampling_is_reproducible_with_generator_and_has_right_moments():
    loc = torch.tensor([1.0, -2.0, 0.5], dtype=F64)
    s = torch.tensor([0.5, 1.0, 2.0], dtype=F64)
    p = DiagonalNormal(loc, s)
    a, b = p.sample((200_000,), generator=gen(3)), p.sample((200_000,), generator=gen(3))
    assert torch.equal(a, b)
    assert torch.allclose(a.mean(0), loc, atol=0.02)
    assert torch.allclose(a.std(0), s, rtol=0.01)


def test_matrix_normal_matches_scipy_and_row_major_vec():
    r, c = 3, 4
    M = torch.randn(r, c, generator=gen(), dtype=F64)
    U, V = rpd(r, 1), rpd(c, 2)
    mn = MatrixNormal(M, row_cov=U, col_cov=V)
    X = torch.randn(6, r, c, generator=gen(3), dtype=F64)
    ref = st.matrix_normal(M.numpy(), U.numpy(), V.numpy())
    np.testing.assert_allclose(mn.log_prob(X).numpy(), ref.logpdf(X.numpy()), rtol=1e-11)
    # row-major vec: vec(X) ~ N(vec(M), kron(U, V)) (independent scipy MVN on X.reshape(-1))
    mvn = st.multivariate_normal(M.numpy().reshape(-1), np.kron(U.numpy(), V.numpy()))
    np.testing.assert_allclose(mn.log_prob(X).numpy(), mvn.logpdf(X.numpy().reshape(6, -1)), rtol=1e-11)
    np.testing.assert_allclose(float(mn.entropy()), mvn.entropy(), rtol=1e-12)
    np.testing.assert_allclose(
        mn.to_multivariate_normal().log_prob(X.reshape(6, -1)).numpy(),
        mvn.logpdf(X.numpy().reshape(6, -1)),
        rtol=1e-11,
    )
    # empirical covariance of samples of vec(X) is kron(U, V)
    S = mn.sample((200_000,), generator=gen(4)).reshape(200_000, -1)
    emp = torch.cov(S.T)
    assert torch.allclose(emp, torch.kron(U, V), atol=0.03)
    assert torch.allclose(mn.variance, torch.diagonal(torch.kron(U, V)).reshape(r, c))


def test_matrix_normal_parametrisations_agree():
    r, c = 2, 3
    M = torch.randn(r, c, generator=gen(), dtype=F64)
    U, V = rpd(r, 5), rpd(c, 6)
    X = torch.randn(4, r, c, generator=gen(7), dtype=F64)
    a = MatrixNormal(M, row_cov=U, col_cov=V)
    b = MatrixNormal(M, row_scale_tril=torch.linalg.cholesky(U), col_precision=torch.linalg.inv(V))
    c_ = MatrixNormal(M, row_precision=torch.linalg.inv(U), col_scale_tril=torch.linalg.cholesky(V))
    for o in (b, c_):
        assert torch.allclose(o.log_prob(X), a.log_prob(X), rtol=1e-10)
        assert torch.allclose(o.row_cov, U) and torch.allclose(o.col_cov, V)
    ident = MatrixNormal(M)
    assert torch.allclose(ident.log_prob(X), IsotropicNormal(M.reshape(-1), 1.0).log_prob(X.reshape(4, -1)))


def test_matrix_normal_errors():
    M = torch.zeros(2, 3, dtype=F64)
    with pytest.raises(ValueError, match="not positive definite"):
        MatrixNormal(M, row_cov=torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=F64))
    with pytest.raises(ValueError, match="must be 3 x 3"):
        MatrixNormal(M, col_cov=torch.eye(2, dtype=F64))
    with pytest.raises(ValueError, match="at most one of"):
        MatrixNormal(M, row_cov=torch.eye(2, dtype=F64), row_scale_tril=torch.eye(2, dtype=F64))
    with pytest.raises(TypeError, match="dtype"):
        MatrixNormal(M, row_cov=torch.eye(2, dtype=torch.float32))
    with pytest.raises(ValueError, match="symmetric"):
        MatrixNormal(M, row_cov=torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=F64))
    with pytest.raises(ValueError, match="event shape"):
        MatrixNormal(M).log_prob(torch.zeros(3, 2, dtype=F64))


# ------------------------------------------------------------------------------------------ Student-t
@pytest.mark.parametrize("df", [0.7, 3.0, 25.0])
def test_student_t_log_prob_and_entropy_match_scipy(df):
    d = 5
    loc = torch.randn(d, generator=gen(), dtype=F64)
    L = torch.linalg.cholesky(rpd(d, 1))
    t = MultivariateStudentT(loc, L, df)
    x = torch.randn(6, d, generator=gen(2), dtype=F64) * 3
    ref = st.multivariate_t(loc.numpy(), (L @ L.T).numpy(), df=df)
    np.testing.assert_allclose(t.log_prob(x).numpy(), ref.logpdf(x.numpy()), rtol=1e-11)
    np.testing.assert_allclose(float(t.entropy()), ref.entropy(), rtol=1e-10)
    iso = MultivariateStudentT(loc, df=df, scale=1.7)
    ref = st.multivariate_t(loc.numpy(), 1.7**2 * np.eye(d), df=df)
    np.testing.assert_allclose(iso.log_prob(x).numpy(), ref.logpdf(x.numpy()), rtol=1e-11)
    np.testing.assert_allclose(float(iso.entropy()), ref.entropy(), rtol=1e-10)


def test_student_t_default_scale_is_identity():
    loc = torch.zeros(3, dtype=F64)
    x = torch.randn(4, 3, generator=gen(), dtype=F64)
    a = MultivariateStudentT(loc, df=4.0)
    b = MultivariateStudentT(loc, torch.eye(3, dtype=F64), 4.0)
    assert torch.allclose(a.log_prob(x), b.log_prob(x))


@pytest.mark.parametrize("alpha", [0.3, 2.0, 50.0])
def test_standard_gamma_sampler_ks(alpha):
    x = sample_standard_gamma(alpha, (20_000,), generator=gen(11))
    assert st.kstest(x.numpy(), st.gamma(alpha).cdf).pvalue > 1e-3
    y = sample_standard_gamma(alpha, (20_000,), generator=gen(11))
    assert torch.equal(x, y)


def test_student_t_samples_follow_the_f_law():
    # |L^{-1}(X - loc)|^2 / d ~ F(d, nu): an independent check of the sampler
    d, df = 4, 3.0
    L = torch.linalg.cholesky(rpd(d, 3))
    t = MultivariateStudentT(torch.ones(d, dtype=F64), L, df)
    x = t.sample((20_000,), generator=gen(5))
    m = (t.mahalanobis(x) / d).numpy()
    assert st.kstest(m, st.f(d, df).cdf).pvalue > 1e-3
    t30 = MultivariateStudentT(torch.ones(d, dtype=F64), L, 30.0)
    s = t30.sample((200_000,), generator=gen(6))
    assert torch.allclose(torch.cov(s.T), t30.covariance_matrix, atol=0.05)


def test_student_t_errors():
    loc = torch.zeros(3, dtype=F64)
    with pytest.raises(ValueError, match="df must be a positive"):
        MultivariateStudentT(loc, df=0.0)
    with pytest.raises(ValueError, match="df must be a positive"):
        MultivariateStudentT(loc, df=-2.0)
    with pytest.raises(TypeError, match="needs df"):
        MultivariateStudentT(loc)
    with pytest.raises(ValueError, match="positive diagonal"):
        MultivariateStudentT(loc, -torch.eye(3, dtype=F64), 4.0)
    with pytest.raises(ValueError, match="must be 3 x 3"):
        MultivariateStudentT(loc, torch.eye(2, dtype=F64), 4.0)
    with pytest.raises(ValueError, match="strictly upper part"):
        MultivariateStudentT(loc, torch.ones(3, 3, dtype=F64), 4.0)
    with pytest.raises(ValueError, match="either scale_tril or scale"):
        MultivariateStudentT(loc, torch.eye(3, dtype=F64), 4.0, scale=1.0)
    with pytest.raises(TypeError, match="dtype"):
        MultivariateStudentT(loc, torch.eye(3), 4.0)
    with pytest.raises(ValueError, match="undefined for df <= 1"):
        MultivariateStudentT(loc, df=1.0).mean  # noqa: B018
    with pytest.raises(ValueError, match="NaN or infinite"):
        MultivariateStudentT(torch.tensor([0.0, float("inf")]), df=4.0)


# ------------------------------------------------------------------------------------------ fits
def test_fit_swag_matches_numpy():
    rng = np.random.default_rng(0)
    snaps = [torch.tensor(rng.standard_normal((3, 4))) for _ in range(6)]
    fit = fit_swag(snaps, rank=4)
    X = np.stack([s.numpy().reshape(-1) for s in snaps])
    np.testing.assert_allclose(fit.mean.numpy(), X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(fit.diag_var.numpy(), X.var(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fit.deviations.numpy(), (X[-4:] - X.mean(0)).T, rtol=1e-12)
    Dh = (X[-4:] - X.mean(0)).T
    cov = 0.5 * np.diag(X.var(0)) + Dh @ Dh.T / (2 * 3) + fit.jitter * np.eye(12)
    np.testing.assert_allclose(fit.covariance().numpy(), cov, rtol=1e-10, atol=1e-14)
    assert fit.jitter > 0
    p = latent_space(snaps[-1], covariance="lowrank", fit=fit)
    assert isinstance(p, LowRankMultivariateNormal)
    np.testing.assert_allclose(p.covariance_matrix.numpy(), cov, rtol=1e-10, atol=1e-14)
    q = latent_space(snaps[-1], covariance="diagonal", fit=fit)
    np.testing.assert_allclose(q.variance.numpy(), X.var(0) + fit.jitter, rtol=1e-10)
    f = latent_space(snaps[-1], covariance="full", fit=fit)
    assert torch.allclose(f.covariance_matrix, torch.tensor(cov))


def test_fit_swag_chunks_and_errors():
    snaps = [torch.randn(50, generator=gen(i)) for i in range(3)]
    fit = fit_swag(snaps, projection="chunk_means", num_chunks=10)
    assert fit.mean.shape == (10,) and fit.rank == 3
    with pytest.raises(ValueError, match="projected weights have 50"):
        latent_space(snaps[0], covariance="diagonal", fit=fit)
    with pytest.raises(ValueError, match="at least 2"):
        fit_swag([snaps[0]])
    with pytest.raises(ValueError, match="has shape"):
        fit_swag([snaps[0], torch.randn(49)])
    with pytest.raises(ValueError, match="rank must be <= 3"):
        fit_swag(snaps, rank=5)
    with pytest.raises(ValueError, match="needs fit=fit_swag"):
        latent_space(snaps[0], covariance="lowrank")


def _linear_ce_hessian(x1, W, y):
    C, k = W.shape

    def loss(wflat):
        z = x1 @ wflat.reshape(C, k).T
        return torch.nn.functional.cross_entropy(z, y)

    return torch.autograd.functional.hessian(loss, W.reshape(-1))


def test_laplace_factors_match_loops_and_kfac_is_exact_for_one_example():
    n, k_in, C = 7, 3, 4
    X = torch.randn(n, k_in, generator=gen(), dtype=F64)
    Z = torch.randn(n, C, generator=gen(1), dtype=F64)
    fit = fit_laplace_linear(X, Z, bias=True, damping=1e-3)
    Xb = np.hstack([X.numpy(), np.ones((n, 1))])
    P = np.exp(Z.numpy()) / np.exp(Z.numpy()).sum(1, keepdims=True)
    A = sum(np.outer(x, x) for x in Xb) / n
    G = sum(np.diag(p) - np.outer(p, p) for p in P) / n
    np.testing.assert_allclose(fit.A.numpy(), A, rtol=1e-12)
    np.testing.assert_allclose(fit.G.numpy(), G, rtol=1e-12, atol=1e-15)
    # G is singular: softmax is invariant to shifting all logits
    assert torch.allclose(fit.G @ torch.ones(C, dtype=F64), torch.zeros(C, dtype=F64), atol=1e-14)
    # one example: the exact Hessian (= Gauss-Newton = Fisher for a linear softmax layer) of the
    # cross-entropy w.r.t. row-major vec(W) equals kron(G, A)
    W = torch.randn(C, k_in + 1, generator=gen(2), dtype=F64)
    x1 = torch.cat([X[:1], torch.ones(1, 1, dtype=F64)], 1)
    H = _linear_ce_hessian(x1, W, torch.tensor([2]))
    one = fit_laplace_linear(X[:1], x1 @ W.T, bias=True, damping=1e-3)
    assert torch.allclose(one.precision(damped=False), H, atol=1e-12)
    # KL between two Kronecker latents with the same factors = 1/2 vec(D)^T kron(G_d, A_d) vec(D)
    D = torch.randn(C, k_in + 1, generator=gen(3), dtype=F64)
    p = latent_space(W, covariance="kronecker", fit=one)
    q = latent_space(W - D, covariance="kronecker", fit=one)
    assert isinstance(p, MatrixNormal)
    kl = float(torch.distributions.kl_divergence(p, q))
    dv = D.reshape(-1)
    Hd = torch.kron(one.G + 1e-3 * torch.eye(C, dtype=F64), one.A + 1e-3 * torch.eye(k_in + 1, dtype=F64))
    assert kl == pytest.approx(0.5 * float(dv @ Hd @ dv), rel=1e-10)
    assert kl == pytest.approx(one.quadratic(D, damped=True), rel=1e-10)
    # with a tiny damping the KL is the exact second-order loss increase 1/2 vec(D)^T H vec(D)
    tiny = fit_laplace_linear(X[:1], x1 @ W.T, bias=True, damping=1e-9)
    p = latent_space(W, covariance="kronecker", fit=tiny)
    q = latent_space(W - D, covariance="kronecker", fit=tiny)
    assert float(torch.distributions.kl_divergence(p, q)) == pytest.approx(0.5 * float(dv @ H @ dv), rel=1e-6)
    # the same latent as a dense MultivariateNormal (small layer)
    full = latent_space(W, covariance="full", fit=one)
    assert torch.allclose(full.precision_matrix, Hd)


def test_laplace_errors():
    X, Z = torch.randn(5, 3), torch.randn(5, 4)
    with pytest.raises(ValueError, match="same number of rows"):
        fit_laplace_linear(X, Z[:4])
    with pytest.raises(ValueError, match="damping must be a positive"):
        fit_laplace_linear(X, Z, damping=0.0)
    fit = fit_laplace_linear(X, Z)
    with pytest.raises(ValueError, match="fold_bias"):
        latent_space(torch.randn(4, 3), covariance="kronecker", fit=fit)
    with pytest.raises(ValueError, match="kronecker"):
        latent_space(torch.randn(4, 4), covariance="kronecker", projection="chunk_means", fit=fit)
    with pytest.raises(ValueError, match="jitter must be 0"):
        latent_space(torch.randn(4, 4), covariance="kronecker", fit=fit, jitter=1e-3)


@pytest.mark.parametrize("n,d", [(5, 12), (40, 6), (3, 3)])
def test_ledoit_wolf_matches_sklearn(n, d):
    from sklearn.covariance import LedoitWolf

    X = np.random.default_rng(n * d).standard_normal((n, d)) @ np.diag(np.linspace(0.5, 2, d))
    ref = LedoitWolf().fit(X)
    fit = ledoit_wolf(torch.tensor(X))
    np.testing.assert_allclose(fit.covariance.numpy(), ref.covariance_, rtol=1e-10, atol=1e-13)
    assert fit.shrinkage == pytest.approx(ref.shrinkage_, rel=1e-10)
    assert fit.jitter == 0.0
    assert int(torch.linalg.cholesky_ex(fit.covariance)[1]) == 0
    p = latent_space(torch.zeros(d), covariance="full", fit=fit)
    assert torch.allclose(p.covariance_matrix, fit.covariance)


def test_ledoit_wolf_degenerate_gets_stated_jitter():
    fit = ledoit_wolf(torch.ones(4, 3, dtype=F64))  # zero sample covariance
    assert fit.jitter > 0
    assert int(torch.linalg.cholesky_ex(fit.covariance)[1]) == 0
    with pytest.raises(ValueError, match="n >= 2"):
        ledoit_wolf(torch.ones(1, 3))
    with pytest.raises(ValueError, match="not positive definite"):
        ledoit_wolf(torch.ones(4, 3, dtype=F64), jitter=0.0)


# ------------------------------------------------------------------------------------------ latent_space
def test_latent_space_families():
    w = torch.randn(6, 5, generator=gen())
    cases = {
        ("gaussian", "isotropic"): IsotropicNormal,
        ("gaussian", "diagonal"): DiagonalNormal,
        ("gaussian", "full"): MultivariateNormal,
        ("gaussian", "kronecker"): MatrixNormal,
        ("student_t", "isotropic"): MultivariateStudentT,
        ("student_t", "full"): MultivariateStudentT,
    }
    for (fam, cov), cls in cases.items():
        p = latent_space(w, fam, cov, scale=0.5)
        assert isinstance(p, cls)
        assert p.loc.dtype == F64
        assert torch.allclose(p.loc.reshape(-1), w.reshape(-1).double())
    iso = latent_space(w, scale=0.5)
    assert float(iso.scale) == 0.5
    kr = latent_space(w, covariance="kronecker", scale=0.5)
    assert torch.allclose(kr.covariance_matrix, 0.25 * torch.eye(30, dtype=F64))
    ch = latent_space(w, "student_t", projection="chunk_means", num_chunks=7, df=4.0)
    assert ch.event_shape == (7,) and ch.df == 4.0
    js = latent_space(w, covariance="diagonal", scale=0.5, jitter=0.01)
    assert torch.allclose(js.variance, torch.full((30,), 0.26, dtype=F64))
    f32 = latent_space(w, dtype=torch.float32)
    assert f32.loc.dtype == torch.float32


def test_latent_space_errors():
    w = torch.randn(4, 3)
    with pytest.raises(ValueError, match="unknown family"):
        latent_space(w, "laplace")
    with pytest.raises(ValueError, match="unknown covariance"):
        latent_space(w, covariance="banded")
    with pytest.raises(ValueError, match="scale must be a positive"):
        latent_space(w, scale=0.0)
    with pytest.raises(ValueError, match="df must be a positive"):
        latent_space(w, "student_t", df=0)
    with pytest.raises(ValueError, match="exceeds the number of weights"):
        latent_space(w, projection="chunk_means", num_chunks=13)
    with pytest.raises(TypeError, match="fit must be"):
        latent_space(w, covariance="full", fit=object())
    with pytest.raises(ValueError, match="not supported"):
        latent_space(w, "student_t", covariance="lowrank")
    with pytest.raises(ValueError, match="NaN or infinite"):
        latent_space(torch.full((2, 2), float("nan")))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_latent_on_cuda_stays_on_device():
    w = torch.randn(10, 8, device="cuda")
    for fam, cov in [("gaussian", "isotropic"), ("gaussian", "kronecker"), ("student_t", "isotropic")]:
        p = latent_space(w, fam, cov)
        assert p.loc.device.type == "cuda"
        x = p.sample((3,), generator=torch.Generator(device="cuda").manual_seed(0))
        assert x.device.type == "cuda" and p.log_prob(x).device.type == "cuda"


# ---------------------------------------------------------------- relocate
@pytest.mark.parametrize("family", ["iso", "diag", "mn", "full", "lowrank", "t_iso", "t_full"])
def test_relocate_keeps_the_covariance_and_moves_the_mean(family):
    """KL(relocate(p, m) || p) against the dense formula 1/2 (m - loc)^T S^-1 (m - loc) (Gaussians),
    and against the exact Student-t KL from the Mahalanobis distance."""
    from latentkit.divergence import student_t_kl_from_distance
    from latentkit.latent import relocate

    g = torch.Generator().manual_seed(3)
    r, c = 2, 3
    d = r * c
    loc = torch.randn(d, generator=g, dtype=torch.float64)
    m = torch.randn(d, generator=g, dtype=torch.float64)
    A = torch.randn(d, d, generator=g, dtype=torch.float64)
    S_full = A @ A.T + d * torch.eye(d, dtype=torch.float64)
    U = torch.tensor([[2.0, 0.3], [0.3, 1.0]], dtype=torch.float64)
    V = torch.diag(torch.tensor([1.0, 0.5, 2.0], dtype=torch.float64))
    W = torch.randn(d, 2, generator=g, dtype=torch.float64)
    cd = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    sd = torch.rand(d, generator=g, dtype=torch.float64) + 0.5
    laws = {
        "iso": (IsotropicNormal(loc, 0.7), 0.49 * torch.eye(d, dtype=torch.float64)),
        "diag": (DiagonalNormal(loc, sd), torch.diag(sd**2)),
        "mn": (MatrixNormal(loc.reshape(r, c), row_cov=U, col_cov=V), torch.kron(U, V)),
        "full": (torch.distributions.MultivariateNormal(loc, S_full), S_full),
        "lowrank": (torch.distributions.LowRankMultivariateNormal(loc, W, cd), W @ W.T + torch.diag(cd)),
        "t_iso": (MultivariateStudentT(loc, df=5.0, scale=0.7), 0.49 * torch.eye(d, dtype=torch.float64)),
        "t_full": (MultivariateStudentT(loc, torch.linalg.cholesky(S_full), 5.0), S_full),
    }
    p, S = laws[family]
    moved = relocate(p, m)
    assert type(moved) is type(p)
    assert torch.allclose(moved.loc.reshape(-1), m)
    diff = m - loc
    maha2 = float(diff @ torch.linalg.solve(S, diff))
    expected = 0.5 * maha2 if not family.startswith("t_") else student_t_kl_from_distance(maha2**0.5, 5.0, d)
    got = float(torch.distributions.kl_divergence(moved, p))
    assert got == pytest.approx(expected, rel=1e-8)


def test_relocate_rejects_bad_inputs():
    from latentkit.latent import relocate

    p = IsotropicNormal(torch.zeros(4, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match="entries"):
        relocate(p, torch.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        relocate(p, torch.tensor([0.0, float("nan"), 0.0, 0.0]))
    with pytest.raises(TypeError, match="Distribution"):
        relocate("not a law", torch.zeros(4))
    with pytest.raises(TypeError, match="latent law"):
        relocate(torch.distributions.Normal(torch.zeros(4), 1.0), torch.zeros(4))


# ------------------------------------------------------------------------------ architecture and issue 12
def test_latent_package_does_not_import_divergence():
    import subprocess
    import sys

    code = "import sys, latentkit.latent; print('latentkit.divergence' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_latent_space_is_a_registry_over_the_option_vocabularies():
    from latentkit.latent.space import BUILDERS
    from latentkit.options import COVARIANCES, FAMILIES

    assert {f for f, _ in BUILDERS} == set(FAMILIES)
    assert {c for _, c in BUILDERS} == set(COVARIANCES)
    assert latentkit_latent_vocab() == (FAMILIES, COVARIANCES)


def latentkit_latent_vocab():
    import latentkit.latent as lat

    return lat.FAMILIES, lat.COVARIANCES


def test_laws_expose_public_linalg_operators():
    from latentkit.linalg import (
        DiagonalCovariance,
        IsotropicCovariance,
        KroneckerCovariance,
        KroneckerFactor,
        TrilCovariance,
    )

    loc = torch.zeros(6, dtype=F64)
    assert isinstance(IsotropicNormal(loc, 2.0).covariance_operator, IsotropicCovariance)
    assert isinstance(DiagonalNormal(loc, 2.0).covariance_operator, DiagonalCovariance)
    mn = MatrixNormal(loc.reshape(2, 3), row_cov=2.0 * torch.eye(2, dtype=F64))
    assert isinstance(mn.covariance_operator, KroneckerCovariance)
    assert isinstance(mn.row_factor, KroneckerFactor) and mn.col_factor.kind == "identity"
    torch.testing.assert_close(mn.covariance_operator.dense(), mn.covariance_matrix)
    t = MultivariateStudentT(loc, df=4.0, scale=2.0)
    assert isinstance(t.scale_operator, IsotropicCovariance)
    t2 = MultivariateStudentT(loc, 2.0 * torch.eye(6, dtype=F64), 4.0)
    assert isinstance(t2.scale_operator, TrilCovariance)


def test_validate_args_is_honoured():
    loc = torch.zeros(3, dtype=F64)
    bad = torch.tensor([float("nan"), 0.0, 0.0], dtype=F64)
    for law in (
        IsotropicNormal(loc, 1.0, validate_args=True),
        DiagonalNormal(loc, 1.0, validate_args=True),
        MultivariateStudentT(loc, df=4.0, validate_args=True),
    ):
        with pytest.raises(ValueError, match="support"):
            law.log_prob(bad)
    mn = MatrixNormal(torch.zeros(2, 2, dtype=F64), validate_args=True)
    with pytest.raises(ValueError, match="support"):
        mn.log_prob(torch.full((2, 2), float("nan"), dtype=F64))
    assert torch.isnan(IsotropicNormal(loc, 1.0).log_prob(bad))  # default: no extra check, as before
    assert IsotropicNormal(loc, 1.0, validate_args=True).arg_constraints["scale"] is not None


def test_half_precision_location_is_refused_with_a_type_error():
    for make in (
        lambda x: IsotropicNormal(x, 1.0),
        lambda x: DiagonalNormal(x, 1.0),
        lambda x: MultivariateStudentT(x, df=4.0),
        lambda x: MatrixNormal(x.reshape(1, 3)),
    ):
        with pytest.raises(TypeError, match="loc must have dtype"):
            make(torch.zeros(3, dtype=torch.float16))


def test_list_parameters_are_cast_to_the_location_dtype():
    loc = torch.zeros(3, dtype=torch.float32)
    assert DiagonalNormal(loc, [1.0, 2.0, 3.0]).scale.dtype == torch.float32
    t = MultivariateStudentT(loc, [[1.0, 0, 0], [0.5, 1.0, 0], [0, 0, 1.0]], 4.0)
    assert t.scale_tril.dtype == torch.float32
    mn = MatrixNormal(torch.zeros(2, 2), row_cov=[[2.0, 0.0], [0.0, 1.0]])
    assert mn.row_cov.dtype == torch.float32
    with pytest.raises(TypeError, match="dtype"):  # a tensor of another dtype is still refused
        DiagonalNormal(loc, torch.ones(3, dtype=F64))
