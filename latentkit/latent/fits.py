"""Covariance fits of a layer's latent law: SWAG, Kronecker-factored Laplace (K-FAC), Ledoit-Wolf.

Examples
--------
>>> import torch
>>> from latentkit.latent.fits import ledoit_wolf
>>> g = torch.Generator().manual_seed(0)
>>> fit = ledoit_wolf(torch.randn(50, 3, generator=g, dtype=torch.float64))
>>> type(fit).__name__
'LedoitWolfFit'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._validation import as_tensor, check_int, check_nonnegative, check_positive, check_same_device
from ..linalg import cholesky
from .projection import project

__all__ = ["SwagFit", "fit_swag", "LaplaceFit", "fit_laplace_linear", "LedoitWolfFit", "ledoit_wolf"]


@dataclass
class SwagFit:
    r"""SWAG moments of weight snapshots (Maddox et al., 2019).

    Attributes
    ----------
    mean : Tensor (d,)
        ``theta_bar = 1/T sum_t theta_t``.
    diag_var : Tensor (d,)
        ``max(mean(theta^2) - theta_bar^2, 0)`` (before jitter).
    deviations : Tensor (d, K)
        ``D_hat``, columns ``theta_t - theta_bar`` for the last ``K = rank`` snapshots.
    jitter : float
        Added to every variance below (stated, never hidden).
    num_snapshots, rank : int
    projection, num_chunks : str, int
        The projection the snapshots went through (must match the latent).

    Notes
    -----
    SWAG covariance: ``Sigma = 1/2 diag(diag_var) + D_hat D_hat^T / (2 (K - 1)) + jitter I``;
    SWAG-diagonal: ``diag(diag_var) + jitter I``.
    """

    mean: torch.Tensor
    diag_var: torch.Tensor
    deviations: torch.Tensor
    jitter: float
    num_snapshots: int
    rank: int
    projection: str = "identity"
    num_chunks: int = 100

    def diagonal_variance(self) -> torch.Tensor:
        """SWAG-diagonal variances ``diag_var + jitter`` (d,)."""
        return self.diag_var + self.jitter

    def lowrank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cov_factor (d, K), cov_diag (d,))`` with ``Sigma = F F^T + diag(cov_diag)``."""
        K = self.deviations.shape[1]
        return self.deviations / math.sqrt(2.0 * (K - 1)), 0.5 * self.diag_var + self.jitter

    def covariance(self) -> torch.Tensor:
        """Dense SWAG covariance (d x d): small ``d`` only."""
        F, D = self.lowrank_factors()
        return F @ F.T + torch.diag(D)


def fit_swag(
    snapshots: Sequence[Any],
    rank: int | None = None,
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    jitter: float | None = None,
) -> SwagFit:
    r"""Fit SWAG moments (mean, diagonal variance, low-rank deviations) to weight snapshots.

    Parameters
    ----------
    snapshots : sequence of T >= 2 tensors of one shape
        The layer's weights at successive SGD iterates (e.g. the end of each epoch).
    rank : int, optional
        ``K``, number of most recent deviations kept (``2 <= K <= T``); default ``min(20, T)``.
    projection, num_chunks
        Applied to every snapshot first (see :func:`project`); use the latent's projection.
    jitter : float, optional
        Added to the variances; default ``1e-6 * mean(diag_var)`` (or ``1e-12`` if that is 0).

    Returns
    -------
    SwagFit
        See its docstring for the covariance formulas; positive definite thanks to ``jitter > 0``.
    """
    if isinstance(snapshots, torch.Tensor) or not isinstance(snapshots, Sequence) or len(snapshots) < 2:
        raise ValueError("snapshots must be a sequence (list/tuple) of at least 2 weight tensors")
    first = as_tensor(snapshots[0], "snapshots[0]", min_dim=1)
    X = []
    for i, s in enumerate(snapshots):
        t = as_tensor(s, f"snapshots[{i}]", min_dim=1)
        if tuple(t.shape) != tuple(first.shape):
            raise ValueError(f"snapshots[{i}] has shape {tuple(t.shape)}, expected {tuple(first.shape)}")
        check_same_device(first, t, "snapshots[0]", f"snapshots[{i}]")
        X.append(project(t, projection, num_chunks).reshape(-1).to(torch.float64))
    X = torch.stack(X)  # (T, d)
    T = X.shape[0]
    K = min(20, T) if rank is None else check_int(rank, "rank", minimum=2, maximum=T)
    mean = X.mean(0)
    diag_var = ((X**2).mean(0) - mean**2).clamp_min(0.0)
    if jitter is None:
        jitter = max(1e-6 * float(diag_var.mean()), 1e-12)
    else:
        jitter = check_positive(jitter, "jitter")
    dev = (X[-K:] - mean).T.contiguous()
    return SwagFit(mean, diag_var, dev, float(jitter), T, K, projection, int(num_chunks))


@dataclass
class LaplaceFit:
    r"""Kronecker-factored Laplace / Fisher (K-FAC) factors of a linear softmax layer.

    For logits ``z = W x~`` with ``W`` of shape ``(C, in+1)`` (``x~ = [x, 1]`` when ``bias``),
    the Fisher = Gauss-Newton of the mean cross-entropy w.r.t. ``vec_rowmajor(W)`` is
    ``E[(diag(p) - p p^T) kron x~ x~^T]``, approximated by ``kron(G, A)`` (exact for one example).

    Attributes
    ----------
    A : Tensor (in+1, in+1)
        ``E[x~ x~^T]``.
    G : Tensor (C, C)
        ``E[diag(p) - p p^T]``, singular (rank ``<= C - 1``: softmax is invariant to adding the
        same number to every logit), hence ``damping``.
    damping : float
        Added to the diagonal of both factors: the latent's precision is
        ``kron(G + damping I, A + damping I)`` (= ``kron(G, A) + damping (I kron A + G kron I)
        + damping^2 I``).
    bias : bool
    num_samples : int
    """

    A: torch.Tensor
    G: torch.Tensor
    damping: float
    bias: bool
    num_samples: int

    @property
    def A_damped(self) -> torch.Tensor:
        return self.A + self.damping * torch.eye(self.A.shape[0], dtype=self.A.dtype, device=self.A.device)

    @property
    def G_damped(self) -> torch.Tensor:
        return self.G + self.damping * torch.eye(self.G.shape[0], dtype=self.G.dtype, device=self.G.device)

    @property
    def weight_shape(self) -> tuple[int, int]:
        """Shape ``(C, in + bias)`` of the matrix the factors describe."""
        return (self.G.shape[0], self.A.shape[0])

    def precision(self, damped: bool = True) -> torch.Tensor:
        """Dense ``kron(G, A)`` (damped by default); small layers only."""
        return torch.kron(self.G_damped, self.A_damped) if damped else torch.kron(self.G, self.A)

    def quadratic(self, delta: Any, damped: bool = False) -> float:
        """``1/2 vec(D)^T kron(G, A) vec(D) = 1/2 tr(G D A D^T)``: second-order loss increase.

        Parameters
        ----------
        delta : torch.Tensor or array-like, shape (C, in + 1)
            The weight change :math:`D` (the bias, when fitted, as a last column; see :func:`fold_bias`).
        damped : bool
            Use the damped factors (``damping`` added) instead of the raw ones.
        """
        D = as_tensor(delta, "delta", min_dim=2).to(torch.float64)
        if tuple(D.shape) != self.weight_shape:
            raise ValueError(f"delta must have shape {self.weight_shape}; got {tuple(D.shape)}")
        G, A = (self.G_damped, self.A_damped) if damped else (self.G, self.A)
        return 0.5 * float(((G @ D) * (D @ A)).sum())


def fit_laplace_linear(
    features: Any,
    logits: Any,
    bias: bool = True,
    damping: float = 1e-3,
) -> LaplaceFit:
    r"""K-FAC factors of a linear softmax (last) layer from a batch of its inputs and outputs.

    Parameters
    ----------
    features : Tensor (n, in)
        Inputs ``x`` of the layer.
    logits : Tensor (n, C)
        Its outputs; ``p = softmax(logits)``.
    bias : bool
        Fold the bias in (append a constant 1 to ``x``), so the factors describe ``[W, b]``
        (see :func:`fold_bias`).
    damping : float > 0
        Added to both factors' diagonals. Required: ``G`` is singular (rank ``C - 1``).

    Returns
    -------
    LaplaceFit
        ``A = 1/n sum x~ x~^T``, ``G = 1/n sum (diag(p) - p p^T)`` (float64), ``damping``.
        The latent built from it (``latent_space(fold_bias(W, b), covariance="kronecker",
        fit=...)``) is ``MN(W, (G + damping I)^{-1}, (A + damping I)^{-1})``: its precision for
        ``vec_rowmajor(W)`` is ``kron(G_d, A_d)`` and the KL between two such latents is
        ``1/2 tr(G_d D A_d D^T)``, a second-order estimate of the mean cross-entropy increase
        caused by ``D = W - W~``.
    """
    X = as_tensor(features, "features", min_dim=2)
    Z = as_tensor(logits, "logits", min_dim=2)
    if X.dim() != 2 or Z.dim() != 2:
        raise ValueError(
            f"features must be (n, in) and logits (n, C); got {tuple(X.shape)} and {tuple(Z.shape)}"
        )
    if X.shape[0] != Z.shape[0]:
        raise ValueError(
            f"features and logits must have the same number of rows; got {X.shape[0]} and {Z.shape[0]}"
        )
    check_same_device(X, Z, "features", "logits")
    if not isinstance(bias, bool):
        raise TypeError("bias must be a bool")
    damping = check_positive(damping, "damping")
    n = X.shape[0]
    X = X.to(torch.float64)
    if bias:
        X = torch.cat([X, X.new_ones(n, 1)], dim=1)
    P = torch.softmax(Z.to(torch.float64), dim=1)
    A = X.T @ X / n
    G = torch.diag(P.mean(0)) - P.T @ P / n
    A = 0.5 * (A + A.T)
    G = 0.5 * (G + G.T)
    return LaplaceFit(A, G, float(damping), bias, int(n))


@dataclass
class LedoitWolfFit:
    r"""Ledoit-Wolf shrunk covariance ``(1 - a) S + a mu I`` (+ ``jitter I`` if it was needed).

    Attributes
    ----------
    covariance : Tensor (d, d)
    shrinkage : float
        ``a`` in [0, 1].
    mean : Tensor (d,)
    jitter : float
        Extra diagonal added to reach positive definiteness (0 when not needed).
    num_samples : int
    """

    covariance: torch.Tensor
    shrinkage: float
    mean: torch.Tensor
    jitter: float
    num_samples: int


def ledoit_wolf(samples: Any, *, assume_centered: bool = False, jitter: float | None = None) -> LedoitWolfFit:
    r"""Ledoit-Wolf (2004) shrinkage estimate of a covariance from few samples.

    ``S = X_c^T X_c / n`` (``X_c`` centred unless ``assume_centered``), ``mu = tr(S)/d``,
    ``delta = ||S - mu I||_F^2 / d``, ``beta = min(delta, 1/(d n^2) sum_k ||x_k x_k^T - S||_F^2)``,
    shrinkage ``a = beta / delta`` and estimate ``(1 - a) S + a mu I`` (same as
    :class:`sklearn.covariance.LedoitWolf`).

    Parameters
    ----------
    samples : Tensor (n, d), n >= 2
    jitter : float, optional
        ``None``: add nothing if the estimate is positive definite, else the smallest of
        ``mu * 10^-12, 10^-11, ...`` that makes it so. A float: add exactly that.

    Returns
    -------
    LedoitWolfFit
    """
    X = as_tensor(samples, "samples", min_dim=2)
    if X.dim() != 2 or X.shape[0] < 2:
        raise ValueError(f"samples must be (n, d) with n >= 2; got {tuple(X.shape)}")
    X = X.to(torch.float64)
    n, d = X.shape
    mean = X.mean(0) if not assume_centered else X.new_zeros(d)
    Xc = X - mean
    S = Xc.T @ Xc / n
    mu = float(torch.trace(S)) / d
    X2 = Xc**2
    beta_ = float((X2.T @ X2).sum())
    delta_ = float((S**2).sum())
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * float(torch.trace(S)) + d * mu**2) / d
    beta = min(beta, delta)
    a = 0.0 if beta == 0 else beta / delta
    cov = (1.0 - a) * S + a * mu * torch.eye(d, dtype=torch.float64, device=X.device)
    eye = torch.eye(d, dtype=torch.float64, device=X.device)
    if jitter is not None:
        j = check_nonnegative(jitter, "jitter")
        cov = cov + j * eye
        cholesky(cov, "Ledoit-Wolf covariance (+ jitter)")
    else:
        j = 0.0
        base = mu if mu > 0 else 1.0
        for k in range(-12, 1):
            if int(torch.linalg.cholesky_ex(cov + j * eye)[1]) == 0:
                break
            j = base * 10.0**k
        else:
            raise ValueError("could not make the Ledoit-Wolf estimate positive definite")
        cov = cov + j * eye
    return LedoitWolfFit(cov, float(a), mean, float(j), int(n))
