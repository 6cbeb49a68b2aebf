"""Spectral pruning (Suzuki et al., IJCAI 2020, arXiv:1808.08558): covariance-driven node selection.

Notation: the nodes F of a layer are the inputs of the *next* layer (the outputs of the pruned layer
after its activation), S = E[x x^T] their (uncentred) second-moment matrix on a batch, lambda > 0 a
ridge parameter. For a kept subset J the best ridge reconstruction of all nodes from the kept ones is
x_F ~ A x_J with A = S_FJ (S_JJ + lambda I)^-1, and its error is

    L(J) = tr[S_FF - S_FJ (S_JJ + lambda I)^-1 S_JF].

Greedy forward selection adds, at each step, the node with the largest decrease of L. With the
residual R = S - S_FJ (S_JJ + lambda I)^-1 S_JF, adding node j lowers L by
``||R[:, j]||^2 / (R_jj + lambda)`` and updates ``R <- R - R[:, j] R[j, :] / (R_jj + lambda)``
(block inverse / Schur complement), so a step is ``O(|F|^2)`` and vectorised over all candidates.

Output-aware criterion (Suzuki et al., section 4): with the next layer's weights W (out x F), the
error of its output is :math:`L_B(J) = \\mathrm{tr}[W R(J) W^T] = \\mathrm{tr}[W^T W R(J)]`, and the
criterion :math:`L_A + \theta L_B = \\mathrm{tr}[M R(J)]` with :math:`M = I + \theta W^T W`
(:func:`output_aware_metric`). Adding node j then lowers it by :math:`u^T M u / (R_{jj} + \\lambda)`,
:math:`u = R_{:,j}`; the residual update is unchanged. ``theta = 0`` (``metric=None``) is the
input-aware criterion alone.

Examples
--------
>>> import torch
>>> from latentkit.pruning.spectral import degrees_of_freedom
>>> round(degrees_of_freedom(torch.eye(3, dtype=torch.float64), 1.0), 4)
1.5
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._validation import as_tensor, check_int, check_nonnegative, check_positive

__all__ = [
    "degrees_of_freedom",
    "ridge_reconstruction_error",
    "greedy_spectral_selection",
    "reconstruction_matrix",
    "SpectralSelection",
    "input_second_moment",
    "output_aware_metric",
]


def _check_cov(S: torch.Tensor, name: str = "S") -> torch.Tensor:
    S = as_tensor(S, name, min_dim=2).to(torch.float64)
    if S.dim() != 2 or S.shape[0] != S.shape[1]:
        raise ValueError(f"{name} must be a square matrix; got shape {tuple(S.shape)}")
    scale = float(S.abs().max().item()) or 1.0
    if not torch.allclose(S, S.T, rtol=0, atol=1e-8 * scale):
        raise ValueError(f"{name} must be symmetric")
    return (S + S.T) / 2


def degrees_of_freedom(S: torch.Tensor, lam: float) -> float:
    r"""Degrees of freedom :math:`N(\lambda) = \mathrm{tr}[S (S + \lambda I)^{-1}]`.

    :math:`N(\lambda) = \sum_j \mu_j / (\mu_j + \lambda)` over the eigenvalues of S.

    Parameters
    ----------
    S : Tensor (F, F)
        Symmetric positive semi-definite (second-moment) matrix; eigenvalues mu_j. Negative
        eigenvalues within round-off (``mu >= -F * 1e-12 * max|mu|``) are clipped to 0.
    lam : float > 0
        Ridge parameter, in the units of S.

    Returns
    -------
    float in [0, F]

    Raises
    ------
    ValueError
        If ``S`` is not symmetric positive semi-definite beyond round-off (a second moment never is).
    """
    S = _check_cov(S)
    lam = check_positive(lam, "lam")
    mu = torch.linalg.eigvalsh(S)
    tol = S.shape[0] * 1e-12 * max(float(mu.abs().max().item()), 1e-300)
    if float(mu.min().item()) < -tol:
        raise ValueError(
            f"S must be positive semi-definite (a second-moment matrix); its smallest eigenvalue is "
            f"{float(mu.min().item()):.6g}"
        )
    mu = mu.clamp_min(0)
    return float((mu / (mu + lam)).sum().item())


def ridge_reconstruction_error(
    S: torch.Tensor, J: Sequence[int], lam: float, metric: torch.Tensor | None = None
) -> float:
    r""":math:`L(J) = \mathrm{tr}[M (S_{FF} - S_{FJ} (S_{JJ} + \lambda I)^{-1} S_{JF})]` for index list ``J``.

    ``metric`` M (F x F, symmetric PSD; default I, the input-aware error) weights the residual, e.g.
    :func:`output_aware_metric` for :math:`L_A + \theta L_B`. float64.
    """
    S = _check_cov(S)
    lam = check_positive(lam, "lam")
    M = None if metric is None else _check_metric(metric, S)
    J = _check_index(J, S.shape[0])
    if not J:
        R = S
    else:
        idx = torch.as_tensor(J, device=S.device)
        SFJ = S[:, idx]
        K = S[idx][:, idx] + lam * torch.eye(len(J), dtype=S.dtype, device=S.device)
        if M is None:
            return float((torch.trace(S) - torch.trace(SFJ @ torch.linalg.solve(K, SFJ.T))).item())
        R = S - SFJ @ torch.linalg.solve(K, SFJ.T)
    return float(torch.trace(R if M is None else M @ R).item())


def _check_index(J: Sequence[int], F: int) -> list[int]:
    """``J`` as a list of distinct node indices in [0, F), or a clear error."""
    if isinstance(J, (str, bytes)) or not hasattr(J, "__iter__"):
        raise TypeError(f"J must be a sequence of node indices; got {type(J).__name__}")
    out = [check_int(j, "node index", minimum=0, maximum=F - 1) for j in J]
    if len(set(out)) != len(out):
        raise ValueError(f"J holds repeated node indices: {out}")
    return out


def _check_metric(metric: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
    M = _check_cov(metric, "metric").to(S.device)
    if M.shape != S.shape:
        raise ValueError(f"metric must have the shape of S {tuple(S.shape)}; got {tuple(M.shape)}")
    return M


def output_aware_metric(next_weight: torch.Tensor, theta: float) -> torch.Tensor:
    r"""The metric :math:`M = I + \theta \sum_k W_k^T W_k` of the criterion :math:`L_A + \theta L_B`.

    Parameters
    ----------
    next_weight : Tensor of shape (out, F), or (out, F, kernel...) for a convolution
        Weights of the layer that takes the pruned layer's F nodes as input. For a convolution the
        sum runs over the kernel taps k (each tap's output error, cross-tap correlations ignored).
    theta : float >= 0
        Weight of the output-aware term (0: the identity, the input-aware criterion).

    Returns
    -------
    Tensor (F, F), float64, symmetric positive definite.
    """
    W = as_tensor(next_weight, "next_weight", min_dim=2).detach().to(torch.float64)
    theta = check_nonnegative(theta, "theta")
    Wk = W.reshape(W.shape[0], W.shape[1], -1)
    B = torch.einsum("ofk,ogk->fg", Wk, Wk)
    return torch.eye(W.shape[1], dtype=torch.float64, device=W.device) + theta * B


def reconstruction_matrix(S: torch.Tensor, J: Sequence[int], lam: float) -> torch.Tensor:
    r""":math:`A = S_{FJ} (S_{JJ} + \lambda I)^{-1}`, ``(F, |J|)`` float64: :math:`x_F \approx A x_J`."""
    S = _check_cov(S)
    lam = check_positive(lam, "lam")
    idx = torch.as_tensor(_check_index(J, S.shape[0]), device=S.device, dtype=torch.long)
    K = S[idx][:, idx] + lam * torch.eye(len(idx), dtype=S.dtype, device=S.device)
    # A K = S_FJ  <=>  K A^T = S_JF (K symmetric)
    return torch.linalg.solve(K, S[idx, :]).T


@dataclass
class SpectralSelection:
    """Result of :func:`greedy_spectral_selection`.

    Attributes
    ----------
    selected : list[int]
        Kept nodes in the order the greedy added them.
    errors : list[float]
        L(J) after 0, 1, ..., m additions (length m + 1; errors[0] = tr S).
    lam : float
    """

    selected: list[int]
    errors: list[float]
    lam: float


def greedy_spectral_selection(
    S: torch.Tensor, m: int, lam: float, metric: torch.Tensor | None = None
) -> SpectralSelection:
    r"""Greedy forward selection of ``m`` nodes minimising the ridge reconstruction error L(J).

    At each step the node j not yet in J maximising :math:`u^T M u / (R_{jj} + \lambda)`,
    :math:`u = R_{:,j}`, is added (first index among exact ties), R being the current residual and
    M the ``metric`` (default I: :math:`\|R_{:,j}\|^2`, the input-aware criterion; see
    :func:`output_aware_metric`). The error sequence :math:`\mathrm{tr}[M R]` is non-increasing.
    float64 on the device of ``S``; O(m F^2) (O(m F^3) with a metric).
    """
    S = _check_cov(S)
    lam = check_positive(lam, "lam")
    F = S.shape[0]
    m = check_int(m, "m", minimum=0, maximum=F)
    M = None if metric is None else _check_metric(metric, S)
    R = S.clone()
    chosen = torch.zeros(F, dtype=torch.bool, device=S.device)
    err = float(torch.trace(S if M is None else M @ S).item())
    selected, errors = [], [err]
    for _ in range(m):
        quad = (R * R).sum(0) if M is None else (R * (M @ R)).sum(0)
        gain = quad / (torch.diagonal(R) + lam)
        gain = torch.where(chosen, torch.full_like(gain, -float("inf")), gain)
        j = int(torch.argmax(gain).item())
        u = R[:, j].clone()
        R -= torch.outer(u, u) / (u[j] + lam)
        chosen[j] = True
        selected.append(j)
        err = float(torch.trace(R if M is None else M @ R).item())
        errors.append(err)
    return SpectralSelection(selected, errors, lam)


def _node_features(x: torch.Tensor) -> torch.Tensor:
    """(n, C) rows of node values: Linear input (..., C) or conv input (N, C, *spatial) per position."""
    if x.dim() >= 3:  # (N, C, H, W...) -> one row per sample and position
        c = x.shape[1]
        return x.movedim(1, -1).reshape(-1, c)
    return x.reshape(-1, x.shape[-1])


def input_second_moment(
    model: nn.Module,
    module: nn.Module,
    inputs: torch.Tensor,
    forward: Callable[[nn.Module, torch.Tensor], object] | None = None,
) -> torch.Tensor:
    r"""Uncentred second moment :math:`S = \frac1n \sum_i x_i x_i^T` of ``module``'s input (float64).

    The input is captured by a forward pre-hook during ``model(inputs)`` (no gradients). For a
    convolution the nodes are channels and every spatial position of every image is a sample.
    Returns ``(C, C)`` on the activations' device.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    store = {}

    def hook(mod, args):
        store["x"] = args[0].detach()

    handle = module.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            (forward or (lambda mdl, x: mdl(x)))(model, inputs)
    finally:
        handle.remove()
    if "x" not in store:
        raise ValueError("the layer after the pruned one was not called by model(inputs); pass next_layer=")
    f = _node_features(store["x"]).to(torch.float64)
    return f.T @ f / f.shape[0]
