"""Spectral pruning of a model's layers (Suzuki et al.): node selection and next-layer rewiring.

For each pruned layer with output nodes F, the input second moment S of the *following* layer is
measured on a batch (:func:`~latentkit.pruning.input_second_moment`), the greedy selection of
:mod:`latentkit.pruning.spectral` keeps ``m`` nodes J minimising

.. math:: L_A(J) + \\theta L_B(J) = \\mathrm{tr}[(I + \\theta B) R(J)],
          \\qquad R(J) = S - S_{FJ}(S_{JJ} + \\lambda I)^{-1} S_{JF},

(:math:`L_A` the input-aware and :math:`L_B` the output-aware reconstruction error, ``B`` built from
the next layer's weights by :func:`~latentkit.pruning.output_aware_metric`), and the next layer is
rewired to :math:`W_{next} A` with :math:`A = S_{FJ}(S_{JJ} + \\lambda I)^{-1}` on the kept nodes.
``theta=0`` (the default) is the input-aware criterion alone.

Examples
--------
>>> from latentkit.pruning import spectral_prune
>>> spectral_prune.__all__
['prune_spectral_layers']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._validation import check_nonnegative, check_positive
from ..modules import dense_param, prunable_layers, pruning_mask
from . import spectral
from .methods import PruneContext, count_to_prune, row_view
from .state import PrecomputedMask

__all__ = ["prune_spectral_layers"]


def _next_prunable(model: nn.Module, name: str) -> tuple[str, nn.Module]:
    layers = prunable_layers(model)
    names = [n for n, _ in layers]
    if name not in names or names.index(name) == len(names) - 1:
        raise ValueError(
            f"spectral pruning of {name!r} needs a following Linear/Conv layer to rewire; none found "
            "(pass next_layer=...)"
        )
    return layers[names.index(name) + 1]


def _successor(model: nn.Module, name: str, next_layer: str | None) -> tuple[str, nn.Module]:
    """The layer whose input nodes are ``name``'s outputs (checked: not pruned, right width)."""
    if next_layer is not None:
        modules = dict(model.named_modules())
        if next_layer not in modules:
            raise ValueError(f"no module named {next_layer!r} in the model")
        nname, nmod = next_layer, modules[next_layer]
    else:
        nname, nmod = _next_prunable(model, name)
    if pruning_mask(nmod) is not None:
        raise ValueError(
            f"spectral pruning of {name!r} rewires {nname!r}, which is already pruned: its mask would "
            "hide rewired weights. Call torch.nn.utils.prune.remove on it first."
        )
    return nname, nmod


def _select_nodes(
    S: torch.Tensor, alive: torch.Tensor, m: int, lam: float, metric: torch.Tensor | None
) -> tuple[list[int], spectral.SpectralSelection]:
    """Greedy selection of ``m`` nodes among the live ones; returns their indices among all nodes."""
    live_idx = torch.nonzero(alive).reshape(-1).to(S.device)
    sub_metric = None if metric is None else metric[live_idx][:, live_idx]
    sel = spectral.greedy_spectral_selection(S[live_idx][:, live_idx], m, lam, metric=sub_metric)
    J = live_idx[torch.as_tensor(sel.selected, dtype=torch.long, device=S.device)].tolist() if m else []
    return J, sel


def _rewire(Wn: torch.Tensor, A: torch.Tensor, Jt: torch.Tensor, m: int) -> None:
    """``W_next[:, J] <- W_next A`` (float64 product), every other input column zeroed."""
    with torch.no_grad():
        Wd = Wn.detach().to(torch.float64)
        new = torch.einsum("of...,fj->oj...", Wd, A.to(Wd.device))
        Wn.zero_()
        if m:
            Wn[:, Jt] = new.to(Wn.dtype)


def _apply_node_masks(
    module: nn.Module, nmod: nn.Module, keep_nodes: torch.Tensor, cand: torch.Tensor | None, amount: Any
) -> None:
    W, Wn = dense_param(module), nmod.weight
    rows = keep_nodes.reshape([-1] + [1] * (W.dim() - 1)).expand(W.shape).clone()
    if cand is not None:
        rows &= cand != 0
    cols = keep_nodes.to(Wn.device).reshape([1, -1] + [1] * (Wn.dim() - 2)).expand(Wn.shape).clone()
    PrecomputedMask.apply(module, "weight", mask=rows, method="spectral", amount=amount, inplace=True)
    PrecomputedMask.apply(nmod, "weight", mask=cols, method="spectral_rewired", amount=amount, inplace=True)


def _prune_one(
    model: nn.Module, name: str, module: nn.Module, ctx: PruneContext
) -> tuple[str, nn.Module, dict]:
    """Spectral pruning of one layer; returns the successor and the per-layer info."""
    opts = ctx.options
    nname, nmod = _successor(model, name, opts.get("next_layer"))
    W, Wn = dense_param(module), nmod.weight
    F = W.shape[0]
    if Wn.dim() < 2 or Wn.shape[1] != F:
        raise ValueError(
            f"{nname!r} (weight {tuple(Wn.shape)}) does not take the {F} outputs of {name!r} as its "
            "input nodes; spectral pruning needs Linear->Linear or Conv->Conv"
        )
    S = spectral.input_second_moment(model, nmod, opts["inputs"], opts.get("forward"))
    if S.shape[0] != F:
        raise ValueError(f"the input of {nname!r} has {S.shape[0]} nodes, {name!r} has {F} outputs")
    lam = opts.get("lam")
    lam_l = (
        check_positive(lam, "lam") if lam is not None else max(1e-2 * float(torch.trace(S).item()) / F, 1e-12)
    )
    theta = opts["theta"]
    metric = spectral.output_aware_metric(Wn, theta).to(S.device) if theta > 0 else None
    cand = ctx.masks_before[name]
    alive = (
        torch.ones(F, dtype=torch.bool, device=W.device) if cand is None else (row_view(cand, 0) != 0).any(1)
    )
    n_alive = int(alive.sum().item())
    k = count_to_prune(ctx.amount, n_alive, f"layer {name!r} (nodes)")
    m = n_alive - k
    J, sel = _select_nodes(S, alive, m, lam_l, metric)
    A = (
        spectral.reconstruction_matrix(S, J, lam_l)
        if m
        else torch.zeros(F, 0, dtype=torch.float64, device=S.device)
    )
    Jt = torch.as_tensor(J, dtype=torch.long, device=Wn.device)
    _rewire(Wn, A, Jt, m)
    keep_nodes = torch.zeros(F, dtype=torch.bool, device=W.device)
    if m:
        keep_nodes[Jt.to(W.device)] = True
    _apply_node_masks(module, nmod, keep_nodes, cand, ctx.amount)
    info = {
        "next_layer": nname, "selected": J, "errors": sel.errors, "lam": lam_l,
        "degrees_of_freedom": spectral.degrees_of_freedom(S, lam_l), "reconstruction": A, "theta": theta,
    }  # fmt: skip
    ctx.info["pruned"][name] = k
    return nname, nmod, info


def prune_spectral_layers(
    model: nn.Module, chosen: list[tuple[str, nn.Module]], ctx: PruneContext
) -> dict[str, Any]:
    """Spectral pruning of every chosen layer (options ``inputs``, ``lam``, ``next_layer``, ``forward``,
    ``theta``); returns ``{"spectral": ..., "pruned": ..., "touched": [(name, module), ...]}``."""
    opts = ctx.options
    if opts.get("inputs") is None:
        raise ValueError("spectral pruning needs example inputs: prune(..., method='spectral', inputs=batch)")
    if opts.get("next_layer") is not None and len(chosen) != 1:
        raise ValueError("next_layer= can only be given when exactly one layer is pruned")
    opts["theta"] = check_nonnegative(opts.get("theta", 0.0), "theta")
    touched: dict[str, nn.Module] = {}
    ctx.info = {"spectral": {}, "pruned": {}}
    for name, module in chosen:
        nname, nmod, info = _prune_one(model, name, module, ctx)
        touched[name] = module
        touched[nname] = nmod
        ctx.info["spectral"][name] = info
    order = [n for n, _ in model.named_modules()]
    ctx.info["touched"] = sorted(touched.items(), key=lambda kv: order.index(kv[0]))
    return ctx.info
