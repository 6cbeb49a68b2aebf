"""AP2 and AP3: how far a pruned layer is from its dense version, in the latent space.

For a layer with weights :math:`w` and its pruned version :math:`\\tilde w = m \\odot w`, a projection
:math:`P` (see :func:`latentkit.latent.project`) and a latent family (see
:func:`latentkit.latent.latent_space`):

* **AP2** (analogous projected patterns): :math:`\\lVert P(w) - P(\\tilde w) \\rVert_2^2`, the squared
  Euclidean (Frobenius) distance of the projected weights;
* **AP3** (analogous-in-probability projected patterns): :math:`\\mathrm{KL}(P(w) \\Vert P(\\tilde w))`,
  the KL divergence between the two latent laws, both built with the *same* covariance (or fit), which is
  the paper's setting. KLs come from :func:`torch.distributions.kl_divergence`, for which
  :mod:`latentkit.divergence` registers every pair of latentkit families.

The two layers "have AP2 (AP3) with tolerance eps" when the value is ``<= eps`` (:func:`has_ap2`,
:func:`has_ap3`). :func:`layer_table` tabulates both for every Linear/Conv layer of two models with the
same architecture.

No hidden rescaling: the reference code divides AP2 by its per-trial maximum (times 3.8); here AP2 is the
raw squared distance unless ``normalize`` names a normalisation explicitly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from ._validation import as_tensor, check_choice, check_nonnegative, check_same_device, check_same_shape

__all__ = ["PatternTest", "ap2", "ap3", "has_ap2", "has_ap3", "layer_table", "AP2_NORMALIZATIONS", "layer_weight"]

#: Normalisations offered by :func:`ap2` (``None`` = raw squared distance).
AP2_NORMALIZATIONS = ("dense_norm", "numel")


def _pair(w: Any, w_pruned: Any) -> "tuple[torch.Tensor, torch.Tensor]":
    w = as_tensor(w, "w", min_dim=0)
    w_pruned = as_tensor(w_pruned, "w_pruned", min_dim=0)
    check_same_shape(w, w_pruned, "w", "w_pruned")
    check_same_device(w, w_pruned, "w", "w_pruned")
    # AP2/AP3 are measurements returned as floats: detach so a weight that requires grad
    # (a Parameter or an expression of one) neither warns nor records an autograd graph.
    return w.detach(), w_pruned.detach()


def ap2(
    w: Any,
    w_pruned: Any,
    projection: str = "identity",
    num_chunks: int = 100,
    normalize: Optional[str] = None,
) -> float:
    """AP2 of a layer pair: the squared distance of the projected weights.

    .. math:: \\mathrm{AP2}(w, \\tilde w) = \\lVert P(w) - P(\\tilde w) \\rVert_2^2
              = \\sum_j \\big(P(w)_j - P(\\tilde w)_j\\big)^2

    computed in float64 on the weights' device.

    Parameters
    ----------
    w, w_pruned : Tensor, any shape (both the same shape, dtype floating, same device)
        Dense and pruned weights of one layer.
    projection : {"identity", "chunk_means", "rows"}
        Passed to :func:`latentkit.latent.project` (identity: flatten to ``(d,)``; chunk_means: ``(k,)``
        means of ``k = num_chunks`` contiguous chunks; rows: ``(out, d_in)``). The squared distance sums
        over every entry of the projection, so "identity" and "rows" give the same AP2.
    num_chunks : int
        Number of chunks for ``projection="chunk_means"``.
    normalize : {None, "dense_norm", "numel"}
        ``None`` (default): the raw value. ``"dense_norm"``: divided by :math:`\\lVert P(w) \\rVert_2^2`
        (relative squared distance; ValueError if the dense projection is zero). ``"numel"``: divided
        by the number of entries of the projection (mean squared difference).

    Returns
    -------
    float
        AP2 >= 0.

    Raises
    ------
    TypeError, ValueError
        Non-floating or non-finite weights, shape or device mismatch, unknown projection or normalize,
        ``num_chunks`` larger than the number of weights (from :func:`~latentkit.latent.project`).
    """
    from .latent import project

    w, w_pruned = _pair(w, w_pruned)
    if normalize is not None:
        check_choice(normalize, "normalize", AP2_NORMALIZATIONS)
    pw = project(w, projection=projection, num_chunks=num_chunks).to(torch.float64)
    pv = project(w_pruned, projection=projection, num_chunks=num_chunks).to(torch.float64)
    value = float(torch.sum((pw - pv) ** 2))
    if normalize == "dense_norm":
        denom = float(torch.sum(pw**2))
        if denom == 0.0:
            raise ValueError("normalize='dense_norm' needs a non-zero dense projection; ||P(w)||^2 = 0")
        value /= denom
    elif normalize == "numel":
        value /= pw.numel()
    return value


def ap3(
    w: Any,
    w_pruned: Any,
    family: str = "gaussian",
    covariance: str = "isotropic",
    **latent_kwargs: Any,
) -> float:
    """AP3 of a layer pair: the KL divergence between the two latent laws.

    .. math:: \\mathrm{AP3}(w, \\tilde w) = \\mathrm{KL}\\big(P(w) \\,\\Vert\\, P(\\tilde w)\\big)

    where ``P(w) = latent_space(w, family, covariance, **latent_kwargs)`` and ``P(w~)`` is built with the
    same arguments (same scale, df, projection and fit, hence the same covariance: the paper's setting).
    For a Gaussian latent with shared covariance :math:`\\Sigma`,
    :math:`\\mathrm{AP3} = \\tfrac12 (P(w)-P(\\tilde w))^\\top \\Sigma^{-1} (P(w)-P(\\tilde w))`; with
    :math:`\\Sigma = s^2 I`, :math:`\\mathrm{AP3} = \\mathrm{AP2} / (2 s^2)`.

    Parameters
    ----------
    w, w_pruned : Tensor, any shape (equal shapes, same device)
        Dense and pruned weights of one layer.
    family : {"gaussian", "student_t"}
    covariance : {"isotropic", "diagonal", "full", "lowrank", "kronecker"}
    **latent_kwargs
        Passed unchanged to :func:`latentkit.latent.latent_space` for both sides (``projection``,
        ``num_chunks``, ``scale``, ``df``, ``fit``, ``jitter``).

    Returns
    -------
    float
        AP3 >= 0, from :func:`torch.distributions.kl_divergence` (closed forms registered by
        :mod:`latentkit.divergence`; the exact reduction for equal-scale Student-t laws).

    Raises
    ------
    TypeError, ValueError
        As :func:`ap2`, plus whatever :func:`~latentkit.latent.latent_space` rejects (df <= 0,
        non-positive-definite covariance, a fit of the wrong size, ...).
    """
    from . import divergence  # noqa: F401  (registers the KL pairs)
    from .latent import latent_space

    w, w_pruned = _pair(w, w_pruned)
    p = latent_space(w, family=family, covariance=covariance, **latent_kwargs)
    q = latent_space(w_pruned, family=family, covariance=covariance, **latent_kwargs)
    kl = torch.distributions.kl_divergence(p, q)
    value = float(kl.sum()) if kl.dim() > 0 else float(kl)
    if not math.isfinite(value):
        raise ValueError(f"AP3 is not finite ({value}); check the latent's covariance (family={family!r}, "
                         f"covariance={covariance!r})")
    # KL >= 0; a tiny negative value is floating-point round-off of an exact zero.
    return max(value, 0.0)


@dataclass(frozen=True)
class PatternTest:
    """Outcome of an AP2/AP3 test: the measured ``value``, the tolerance ``eps`` and ``holds = value <= eps``.

    Truthy exactly when the pattern holds, so ``if has_ap2(w, v, eps): ...`` reads naturally, while the
    value stays available.
    """

    value: float
    eps: float
    holds: bool
    kind: str = ""

    def __bool__(self) -> bool:
        return bool(self.holds)


def has_ap2(w: Any, w_pruned: Any, eps: float, **ap2_kwargs: Any) -> PatternTest:
    """Do ``w`` and ``w_pruned`` have AP2 with tolerance ``eps``, i.e. :math:`\\mathrm{AP2} \\le \\varepsilon`?

    Parameters
    ----------
    w, w_pruned : Tensor
        Dense and pruned weights (same shape).
    eps : float
        Tolerance, finite and >= 0 (ValueError otherwise).
    **ap2_kwargs
        Passed to :func:`ap2` (projection, num_chunks, normalize).

    Returns
    -------
    PatternTest
        ``value`` (AP2), ``eps``, ``holds`` (truthy when AP2 <= eps).
    """
    eps = check_nonnegative(eps, "eps")
    value = ap2(w, w_pruned, **ap2_kwargs)
    return PatternTest(value=value, eps=eps, holds=value <= eps, kind="AP2")


def has_ap3(w: Any, w_pruned: Any, eps: float, **ap3_kwargs: Any) -> PatternTest:
    """Do ``w`` and ``w_pruned`` have AP3 with tolerance ``eps``, i.e. :math:`\\mathrm{KL}(P(w)\\Vert P(\\tilde w)) \\le \\varepsilon`?

    Parameters
    ----------
    w, w_pruned : Tensor
        Dense and pruned weights (same shape).
    eps : float
        Tolerance, finite and >= 0 (ValueError otherwise).
    **ap3_kwargs
        Passed to :func:`ap3` (family, covariance and the latent_space arguments).

    Returns
    -------
    PatternTest
        ``value`` (AP3), ``eps``, ``holds`` (truthy when AP3 <= eps).
    """
    eps = check_nonnegative(eps, "eps")
    value = ap3(w, w_pruned, **ap3_kwargs)
    return PatternTest(value=value, eps=eps, holds=value <= eps, kind="AP3")


_LAYER_TYPES = (nn.Linear, nn.modules.conv._ConvNd)


def layer_weight(module: nn.Module) -> torch.Tensor:
    """The effective (masked) weight of a Linear/Conv module, detached.

    With :mod:`torch.nn.utils.prune`, ``module.weight`` is ``weight_orig * weight_mask`` as of the last
    forward pass (or of pruning); this returns ``weight_orig * weight_mask`` directly, so it is also right
    after ``weight_orig`` was edited in place without a forward pass. Without pruning it is ``module.weight``.
    """
    if hasattr(module, "weight_orig") and hasattr(module, "weight_mask"):
        return (module.weight_orig * module.weight_mask).detach()
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(module).__name__} has no weight tensor")
    return weight.detach()


def _prunable_layers(model: nn.Module, name: str) -> "dict[str, nn.Module]":
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(model).__name__}")
    return {n: m for n, m in model.named_modules() if isinstance(m, _LAYER_TYPES)}


def layer_table(
    dense_model: nn.Module,
    pruned_model: nn.Module,
    layers: Optional[Sequence[str]] = None,
    ap3_specs: Optional[Mapping[str, Mapping[str, Any]]] = None,
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    normalize: Optional[str] = None,
) -> "Any":
    """Per-layer AP2/AP3 table for a dense model and its pruned version (same architecture).

    One row per ``nn.Linear`` / ``nn.Conv{1,2,3}d`` layer (weights only; biases are not compared), in
    ``named_modules`` order, with columns

    ``layer`` (module name), ``type``, ``shape`` (tuple), ``parameters`` (weight entries), ``zeros`` and
    ``sparsity`` (of the pruned layer's effective weight), ``ap2`` (:func:`ap2` with ``projection``,
    ``num_chunks``, ``normalize``) and one column per entry of ``ap3_specs``.

    Works whether or not the models use :mod:`torch.nn.utils.prune`: the effective weight is
    ``weight_orig * weight_mask`` when those exist (see :func:`layer_weight`), else ``weight``.

    Parameters
    ----------
    dense_model, pruned_model : nn.Module
        Same architecture: the same Linear/Conv module names, types and weight shapes (ValueError otherwise).
    layers : sequence of str, optional
        Module names to include (default: every Linear/Conv layer). Unknown names raise ValueError.
    ap3_specs : mapping column name -> dict of :func:`ap3` keyword arguments, optional
        Default ``{"ap3": {"family": "gaussian", "covariance": "isotropic", "scale": 1.0}}``
        (AP3 = AP2 / 2 with the identity projection). E.g. ``{"ap3_iso": {}, "ap3_t4": {"family":
        "student_t", "df": 4.0, "projection": "chunk_means"}}``. The same spec is applied to every layer.
    projection, num_chunks, normalize
        For the ``ap2`` column.

    Returns
    -------
    pandas.DataFrame
    """
    import pandas as pd

    dense_layers = _prunable_layers(dense_model, "dense_model")
    pruned_layers = _prunable_layers(pruned_model, "pruned_model")
    if list(dense_layers) != list(pruned_layers):
        only_d = sorted(set(dense_layers) - set(pruned_layers))
        only_p = sorted(set(pruned_layers) - set(dense_layers))
        raise ValueError(
            "dense_model and pruned_model have different architectures: Linear/Conv layers only in the dense "
            f"model {only_d}, only in the pruned model {only_p}"
            + ("" if only_d or only_p else " (same names, different order)")
        )
    if ap3_specs is None:
        ap3_specs = {"ap3": {"family": "gaussian", "covariance": "isotropic", "scale": 1.0}}
    if not isinstance(ap3_specs, Mapping):
        raise TypeError(f"ap3_specs must be a mapping column name -> dict of ap3 arguments; got {type(ap3_specs).__name__}")
    reserved = {"layer", "type", "shape", "parameters", "zeros", "sparsity", "ap2"}
    for col, spec in ap3_specs.items():
        if not isinstance(col, str) or col in reserved:
            raise ValueError(f"invalid ap3_specs column name {col!r} (must be a string not in {sorted(reserved)})")
        if not isinstance(spec, Mapping):
            raise TypeError(f"ap3_specs[{col!r}] must be a dict of ap3 arguments; got {type(spec).__name__}")
    if layers is None:
        names = list(dense_layers)
    else:
        if isinstance(layers, str):
            layers = [layers]
        names = list(layers)
        unknown = [n for n in names if n not in dense_layers]
        if unknown:
            raise ValueError(f"unknown layer(s) {unknown}; Linear/Conv layers are {list(dense_layers)}")
    rows = []
    for name in names:
        md, mp = dense_layers[name], pruned_layers[name]
        if type(md) is not type(mp):
            raise ValueError(
                f"layer {name!r} is {type(md).__name__} in dense_model but {type(mp).__name__} in pruned_model"
            )
        w, v = layer_weight(md), layer_weight(mp)
        if w.shape != v.shape:
            raise ValueError(
                f"layer {name!r} has weight shape {tuple(w.shape)} in dense_model but {tuple(v.shape)} in pruned_model"
            )
        zeros = int((v == 0).sum())
        row = {
            "layer": name,
            "type": type(md).__name__,
            "shape": tuple(w.shape),
            "parameters": w.numel(),
            "zeros": zeros,
            "sparsity": zeros / w.numel(),
            "ap2": ap2(w, v, projection=projection, num_chunks=num_chunks, normalize=normalize),
        }
        for col, spec in ap3_specs.items():
            try:
                row[col] = ap3(w, v, **dict(spec))
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"layer {name!r}, column {col!r}: {exc}") from exc
        rows.append(row)
    return pd.DataFrame(rows)
