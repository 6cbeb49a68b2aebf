"""Tests of latentkit.linalg: every structured operator against its dense matrix."""

import itertools

import pytest
import torch

from latentkit.linalg import (
    DiagonalCovariance,
    IsotropicCovariance,
    KroneckerCovariance,
    KroneckerFactor,
    LowRankCovariance,
    TrilCovariance,
    check_tril,
    cholesky,
    solve_tril,
    trace_inv_product,
    tril_solve_blocked,
)

F64 = torch.float64
R, C = 3, 4
D = R * C


def rpd(n, seed):
    g = torch.Generator().manual_seed(seed)
    B = torch.randn(n, n, generator=g, dtype=F64)
    return B @ B.T / n + 0.5 * torch.eye(n, dtype=F64)


def factor(kind, n, seed):
    if kind == "identity":
        return KroneckerFactor("identity", n)
    L = torch.linalg.cholesky(rpd(n, seed))
    return KroneckerFactor(kind, n, L)


def factor_dense(f):
    if f.kind == "identity":
        return torch.eye(f.n, dtype=F64)
    S = f.L @ f.L.T
    return S if f.kind == "cov" else torch.linalg.inv(S)


def operators(seed=0):
    g = torch.Generator().manual_seed(seed)
    like = torch.zeros((), dtype=F64)
    W = torch.randn(D, 3, generator=g, dtype=F64)
    Dg = torch.rand(D, generator=g, dtype=F64) + 0.2
    ops = {
        "iso": IsotropicCovariance(torch.tensor(0.7, dtype=F64), D),
        "diag": DiagonalCovariance(torch.rand(D, generator=g, dtype=F64) + 0.3),
        "full": TrilCovariance(torch.linalg.cholesky(rpd(D, seed + 1))),
        "lowrank": LowRankCovariance(W, Dg),
    }
    for rk, ck in itertools.product(("identity", "cov", "prec"), repeat=2):
        ops[f"kron-{rk}-{ck}"] = KroneckerCovariance(factor(rk, R, seed + 2), factor(ck, C, seed + 3), like)
    return ops


def dense(op):
    if isinstance(op, KroneckerCovariance):
        return torch.kron(factor_dense(op.row).contiguous(), factor_dense(op.col).contiguous())
    if isinstance(op, LowRankCovariance):
        return op.W @ op.W.T + torch.diag(op.D)
    if isinstance(op, TrilCovariance):
        return op.L @ op.L.T
    if isinstance(op, DiagonalCovariance):
        return torch.diag(op.scale**2)
    return op.scale**2 * torch.eye(op.d, dtype=F64)


@pytest.mark.parametrize("name", list(operators()))
def test_operator_matches_its_dense_matrix(name):
    op = operators()[name]
    S = dense(op)
    V = torch.randn(D, 5, generator=torch.Generator().manual_seed(9), dtype=F64)
    assert op.d == D
    assert float(op.logdet()) == pytest.approx(float(torch.logdet(S)), rel=1e-12)
    assert float(op.inv_quad(V)) == pytest.approx(float((V * torch.linalg.solve(S, V)).sum()), rel=1e-11)
    torch.testing.assert_close(op.diagonal(), torch.diagonal(S), rtol=1e-12, atol=0)
    torch.testing.assert_close(op.inv_diagonal(), torch.diagonal(torch.linalg.inv(S)), rtol=1e-10, atol=0)
    torch.testing.assert_close(op.matmul(V), S @ V, rtol=1e-12, atol=1e-13)
    F = op.dense_factor()
    torch.testing.assert_close(F @ F.T, S, rtol=1e-11, atol=1e-12)
    torch.testing.assert_close(op.dense(), S, rtol=1e-11, atol=1e-12)
    assert float(op.trace()) == pytest.approx(float(torch.trace(S)), rel=1e-12)
    assert op.same_as(op) and op.same_as(op.to(F64))
    assert op.to(torch.float32).to(F64).d == D


@pytest.mark.parametrize("p_name,q_name", list(itertools.product(list(operators()), repeat=2)))
def test_trace_inv_product_for_every_pair(p_name, q_name):
    p, q = operators(0)[p_name], operators(5)[q_name]
    ref = float(torch.trace(torch.linalg.solve(dense(q), dense(p))))
    assert float(trace_inv_product(p, q)) == pytest.approx(ref, rel=1e-10)


def test_same_as_tells_structures_and_values_apart():
    a, b = operators(0), operators(1)
    assert not a["iso"].same_as(a["diag"])
    assert not a["full"].same_as(b["full"])
    assert not a["kron-cov-cov"].same_as(a["kron-cov-prec"])
    assert a["kron-identity-identity"].same_as(b["kron-identity-identity"])


def test_kronecker_mahalanobis_is_the_trace_form():
    op = operators()["kron-cov-prec"]
    X = torch.randn(R, C, generator=torch.Generator().manual_seed(3), dtype=F64)
    v = X.reshape(-1)
    ref = float(v @ torch.linalg.solve(dense(op), v))
    assert float(op.mahalanobis(X)) == pytest.approx(ref, rel=1e-12)


def test_factor_trace_inv_product_and_blocked_solve():
    fq, fp = factor("cov", 7, 1), factor("cov", 7, 2)
    like = torch.zeros((), dtype=F64)
    ref = float(torch.trace(torch.linalg.solve(factor_dense(fq), factor_dense(fp))))
    assert float(fq.trace_inv_product(fp, like)) == pytest.approx(ref, rel=1e-12)
    L = torch.linalg.cholesky(rpd(9, 4))
    B = torch.randn(6, 2, generator=torch.Generator().manual_seed(1), dtype=F64)
    torch.testing.assert_close(tril_solve_blocked(L, B, 3, step=2), solve_tril(L[3:, 3:], B))


def test_cholesky_and_check_tril_errors_name_the_matrix():
    with pytest.raises(ValueError, match="M must be a square matrix"):
        cholesky(torch.ones(2, 3, dtype=F64), "M")
    with pytest.raises(ValueError, match="M must be symmetric"):
        cholesky(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=F64), "M")
    with pytest.raises(ValueError, match="M is not positive definite"):
        cholesky(-torch.eye(2, dtype=F64), "M")
    with pytest.raises(ValueError, match="positive diagonal"):
        check_tril(-torch.eye(2, dtype=F64), "L")
    with pytest.raises(ValueError, match="strictly upper part"):
        check_tril(torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=F64), "L")
    with pytest.raises(ValueError, match="must be 3 x 3"):
        check_tril(torch.eye(2, dtype=F64), "L", 3)
