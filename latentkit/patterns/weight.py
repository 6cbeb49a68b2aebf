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
:func:`has_ap3`). :func:`layer_table` tabulates both for every prunable layer (Linear and every
convolution, :func:`latentkit.modules.prunable_layers`) of two models with the same architecture.

No hidden rescaling: the reference code divides AP2 by its per-trial maximum (times 3.8); here AP2 is the
raw squared distance unless ``normalize`` names a normalisation explicitly.

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> wp = w * (w.abs() > 4)
>>> from latentkit.patterns.weight import ap3
>>> ap3(w, wp) > 0
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from .. import divergence  # noqa: F401  (importing it registers latentkit's KL pairs with torch)
from .._validation import as_tensor, check_choice, check_nonnegative, check_same_device, check_same_shape
from ..latent import MatrixNormal, fold_bias, latent_space, project
from ..modules import effective_weight, prunable_layers
from ..options import AP2_NORMALIZATIONS, PROJECTIONS

__all__ = [
    "AP3Against",
    "PatternTest",
    "ap2",
    "ap3",
    "has_ap2",
    "has_ap3",
    "layer_table",
    "pattern_values",
    "AP2_NORMALIZATIONS",
]

#: The columns of :func:`layer_table` before the AP3 columns (also those of an empty table).
TABLE_COLUMNS = ("layer", "type", "shape", "parameters", "zeros", "sparsity", "ap2")


def _pair(w: Any, w_pruned: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Both weights as floating tensors of one shape, dtype and device, finite, detached."""
    w = as_tensor(w, "w", min_dim=1)
    w_pruned = as_tensor(w_pruned, "w_pruned", min_dim=1)
    check_same_shape(w, w_pruned, "w", "w_pruned")
    check_same_device(w, w_pruned, "w", "w_pruned")
    if w.dtype != w_pruned.dtype:
        raise TypeError(
            f"w and w_pruned must have the same dtype; got {w.dtype} and {w_pruned.dtype} "
            "(prune a copy of the dense weights, or cast one to the other's dtype)"
        )
    # AP2/AP3 are measurements returned as floats: detach so a weight that requires grad
    # (a Parameter or an expression of one) neither warns nor records an autograd graph.
    return w.detach(), w_pruned.detach()


def ap2(
    w: Any,
    w_pruned: Any,
    projection: str = "identity",
    num_chunks: int = 100,
    normalize: str | None = None,
) -> float:
    """AP2 of a layer pair: the squared distance of the projected weights.

    .. math:: \\mathrm{AP2}(w, \\tilde w) = \\lVert P(w) - P(\\tilde w) \\rVert_2^2
              = \\sum_j \\big(P(w)_j - P(\\tilde w)_j\\big)^2

    computed in float64 on the weights' device.

    Parameters
    ----------
    w, w_pruned : Tensor, at least 1-d (both the same shape, the same floating dtype, same device)
        Dense and pruned weights of one layer, finite.
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
        Non-floating, 0-d, empty or non-finite (NaN/inf) weights, shape, dtype or device mismatch,
        unknown projection or normalize, ``num_chunks`` larger than the number of weights (from
        :func:`~latentkit.latent.project`), a value that overflows float64.
    """
    w, w_pruned = _pair(w, w_pruned)
    if normalize is not None:
        check_choice(normalize, "normalize", AP2_NORMALIZATIONS)
    pw = project(w, projection=projection, num_chunks=num_chunks).to(torch.float64)
    pv = project(w_pruned, projection=projection, num_chunks=num_chunks).to(torch.float64)
    if normalize == "dense_norm":
        return _relative_ap2(pw, pv)
    value = _finite_ap2(float(torch.sum((pw - pv) ** 2)))
    if normalize == "numel":
        value /= pw.numel()
    return value


#: Magnitudes whose squares (and sums of up to ~1e8 squares) are normal, finite float64 numbers.
_SAFE_SQUARE = (1e-100, 1e100)


def _finite_ap2(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"AP2 overflows float64 ({value}): the weights are too large to square")
    return value


def _relative_ap2(pw: torch.Tensor, pv: torch.Tensor) -> float:
    """:math:`\\lVert P(w) - P(\\tilde w)\\rVert^2 / \\lVert P(w)\\rVert^2`, float64.

    The ratio is scale-free, so when the squares would lose precision (subnormal below ~1e-154) or
    overflow (above ~1e154), both sums are computed on the projections divided by
    :math:`m = \\max_j |P(w)_j|` instead (one extra rounding per entry, far below the
    loss it avoids). Magnitudes in [1e-100, 1e100] take the direct path, unchanged.
    """
    m = float(pw.abs().max())
    if m > 0.0 and not _SAFE_SQUARE[0] <= m <= _SAFE_SQUARE[1]:
        pw, pv = pw / m, pv / m
    value, denom = float(torch.sum((pw - pv) ** 2)), float(torch.sum(pw**2))
    if denom == 0.0:
        raise ValueError("normalize='dense_norm' needs a non-zero dense projection; ||P(w)||^2 = 0")
    return _finite_ap2(value) / denom


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
    w, w_pruned : Tensor, at least 1-d (equal shapes, the same floating dtype, same device)
        Dense and pruned weights of one layer, finite.
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
    w, w_pruned = _pair(w, w_pruned)
    return AP3Against(w, family=family, covariance=covariance, **latent_kwargs)(w_pruned)


def _kl_value(p: Any, q: Any, family: str, covariance: str) -> float:
    """``KL(p || q)`` as a float >= 0 (summed over a batch), or a ValueError when it is not finite."""
    kl = torch.distributions.kl_divergence(p, q)
    value = float(kl.sum()) if kl.dim() > 0 else float(kl)
    if not math.isfinite(value):
        raise ValueError(
            f"AP3 is not finite ({value}); check the latent's covariance (family={family!r}, "
            f"covariance={covariance!r})"
        )
    # KL >= 0; a tiny negative value is floating-point round-off of an exact zero.
    return max(value, 0.0)


class AP3Against:
    r"""AP3 of many pruned versions of one dense layer: :math:`w \mapsto \mathrm{KL}(P(w_0) \Vert P(w))`.

    ``AP3Against(w0, **kw)(w)`` is ``ap3(w0, w, **kw)`` (which calls it), but the dense latent
    :math:`P(w_0)` is built once, and for a matrix-normal latent (``covariance="kronecker"``, whose
    row and column factors depend on the fit or the scale, never on the weights) the pruned latent
    reuses its Cholesky factors instead of factorising the same matrices again (bit for bit the
    KL of two latents built separately, a test checks): for the quick grid's Kronecker-Laplace
    AP3 (a 512 x 512 column factor) that is most of the time of a call.
    The grid measures every (cell, epoch) against its dense layer with it.

    Parameters
    ----------
    w : Tensor, at least 1-d
        The dense weights :math:`w_0`, finite, floating.
    family, covariance, **latent_kwargs
        As :func:`ap3`.

    Raises
    ------
    TypeError, ValueError
        As :func:`ap3`, when built (for ``w``) and when called (for the pruned weights: shape,
        dtype and device must match ``w``).

    Examples
    --------
    >>> w = torch.randn(3, 4, dtype=torch.float64)
    >>> ap = AP3Against(w, covariance="kronecker", scale=0.5)
    >>> ap(w * 0.5) == ap3(w, w * 0.5, covariance="kronecker", scale=0.5)
    True
    """

    def __init__(
        self, w: Any, family: str = "gaussian", covariance: str = "isotropic", **latent_kwargs: Any
    ) -> None:
        w, _ = _pair(w, w)
        self.w = w
        self.family, self.covariance, self.kwargs = family, covariance, dict(latent_kwargs)
        self.p = latent_space(w, family=family, covariance=covariance, **latent_kwargs)
        self._shared = isinstance(self.p, MatrixNormal)

    def __call__(self, w_pruned: Any) -> float:
        """AP3 of ``w_pruned`` against the dense weights (a float >= 0)."""
        _, w_pruned = _pair(self.w, w_pruned)
        if self._shared:  # the same factors latent_space would build again; the loc as it builds it
            loc = project(w_pruned, "rows").to(device=self.p.loc.device, dtype=self.p.loc.dtype)
            q = MatrixNormal.from_factors(loc, self.p.row_factor, self.p.col_factor)
        else:
            q = latent_space(w_pruned, family=self.family, covariance=self.covariance, **self.kwargs)
        return _kl_value(self.p, q, self.family, self.covariance)


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
    """Do ``w`` and ``w_pruned`` have AP2 with tolerance ``eps``, i.e.
    :math:`\\mathrm{AP2} \\le \\varepsilon`?

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
    """Do ``w`` and ``w_pruned`` have AP3 with tolerance ``eps``, i.e.
    :math:`\\mathrm{KL}(P(w)\\Vert P(\\tilde w)) \\le \\varepsilon`?

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


def _layers_of(model: Any, name: str) -> dict[str, nn.Module]:
    """The prunable layers of ``model`` by name (TypeError naming ``name`` if it is not a Module)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module; got {type(model).__name__}")
    return dict(prunable_layers(model))


def _check_same_layers(dense_layers: Mapping[str, nn.Module], pruned_layers: Mapping[str, nn.Module]) -> None:
    if list(dense_layers) != list(pruned_layers):
        only_d = sorted(set(dense_layers) - set(pruned_layers))
        only_p = sorted(set(pruned_layers) - set(dense_layers))
        raise ValueError(
            "dense_model and pruned_model have different architectures: Linear/Conv layers only in the dense "
            f"model {only_d}, only in the pruned model {only_p}"
            + ("" if only_d or only_p else " (same names, different order)")
        )


def _check_specs(ap3_specs: Any) -> dict[str, Mapping[str, Any]]:
    """The AP3 column specs (default: one isotropic Gaussian column ``ap3`` with scale 1), validated."""
    if ap3_specs is None:
        return {"ap3": {"family": "gaussian", "covariance": "isotropic", "scale": 1.0}}
    if not isinstance(ap3_specs, Mapping):
        raise TypeError(
            "ap3_specs must be a mapping column name -> dict of ap3 arguments; "
            f"got {type(ap3_specs).__name__}"
        )
    for col, spec in ap3_specs.items():
        if not isinstance(col, str) or col in TABLE_COLUMNS:
            raise ValueError(
                f"invalid ap3_specs column name {col!r} (must be a string not in {sorted(TABLE_COLUMNS)})"
            )
        if not isinstance(spec, Mapping):
            raise TypeError(f"ap3_specs[{col!r}] must be a dict of ap3 arguments; got {type(spec).__name__}")
    return dict(ap3_specs)


def _select(layers: Any, dense_layers: Mapping[str, nn.Module]) -> list[str]:
    """The layer names to tabulate: all prunable layers, or the ones named (in the order given)."""
    if layers is None:
        return list(dense_layers)
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Sequence) or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers must be a module name or a sequence of module names; got {layers!r}")
    names = list(layers)
    unknown = [n for n in names if n not in dense_layers]
    if unknown:
        raise ValueError(f"unknown layer(s) {unknown}; Linear/Conv layers are {list(dense_layers)}")
    return names


def _measured(layer: str, column: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, with TypeError/ValueError messages prefixed by the layer and column."""
    try:
        return fn(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"layer {layer!r}, column {column!r}: {exc}") from exc


def _row(
    name: str,
    md: nn.Module,
    mp: nn.Module,
    specs: Mapping[str, Mapping[str, Any]],
    ap2_kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """One row of :func:`layer_table` for the layer ``name`` (dense module ``md``, pruned ``mp``)."""
    if type(md) is not type(mp):
        raise ValueError(
            f"layer {name!r} is {type(md).__name__} in dense_model but {type(mp).__name__} in pruned_model"
        )
    w = _measured(name, "weight", effective_weight, md)
    v = _measured(name, "weight", effective_weight, mp)
    if w.shape != v.shape:
        raise ValueError(
            f"layer {name!r} has weight shape {tuple(w.shape)} in dense_model but {tuple(v.shape)} "
            "in pruned_model"
        )
    zeros = int((v == 0).sum())
    row = {
        "layer": name,
        "type": type(md).__name__,
        "shape": tuple(w.shape),
        "parameters": w.numel(),
        "zeros": zeros,
        "sparsity": zeros / w.numel(),
    }
    row["ap2"] = _measured(name, "ap2", ap2, w, v, **ap2_kwargs)
    for col, spec in specs.items():
        row[col] = _measured(name, col, ap3, w, v, **dict(spec))
    return row


def layer_table(
    dense_model: nn.Module,
    pruned_model: nn.Module,
    layers: Sequence[str] | None = None,
    ap3_specs: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    projection: str = "identity",
    num_chunks: int = 100,
    normalize: str | None = None,
) -> pd.DataFrame:
    """Per-layer AP2/AP3 table for a dense model and its pruned version (same architecture).

    One row per prunable layer (``nn.Linear`` and every convolution, as
    :func:`latentkit.modules.prunable_layers` lists them; weights only, biases are not compared), in
    ``named_modules`` order, with columns

    ``layer`` (module name), ``type``, ``shape`` (tuple), ``parameters`` (weight entries), ``zeros`` and
    ``sparsity`` (of the pruned layer's effective weight), ``ap2`` (:func:`ap2` with ``projection``,
    ``num_chunks``, ``normalize``: :math:`\\lVert P(w) - P(\\tilde w)\\rVert_2^2`) and one column per entry
    of ``ap3_specs`` (:math:`\\mathrm{KL}(P(w) \\Vert P(\\tilde w))`).

    Works whether or not the models use :mod:`torch.nn.utils.prune`: the effective weight is
    ``weight_orig * weight_mask`` when those exist (see :func:`latentkit.modules.effective_weight`),
    else ``weight``.

    Parameters
    ----------
    dense_model, pruned_model : nn.Module
        Same architecture: the same Linear/Conv module names, types and weight shapes (ValueError otherwise).
    layers : str or sequence of str, optional
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
        With no prunable layer (or ``layers=[]``) the table is empty but still has every column, so
        code that selects columns works on it.

    Raises
    ------
    TypeError, ValueError
        Not Modules, different architectures, unknown layers, invalid specs; errors of :func:`ap2` /
        :func:`ap3` name the layer and the column.
    """
    dense_layers = _layers_of(dense_model, "dense_model")
    pruned_layers = _layers_of(pruned_model, "pruned_model")
    _check_same_layers(dense_layers, pruned_layers)
    specs = _check_specs(ap3_specs)
    names = _select(layers, dense_layers)
    check_choice(projection, "projection", PROJECTIONS)
    if normalize is not None:
        check_choice(normalize, "normalize", AP2_NORMALIZATIONS)
    ap2_kwargs = {"projection": projection, "num_chunks": num_chunks, "normalize": normalize}
    rows = [_row(n, dense_layers[n], pruned_layers[n], specs, ap2_kwargs) for n in names]
    return pd.DataFrame(rows, columns=[*TABLE_COLUMNS, *specs])


def pattern_values(
    w: Any,
    w_pruned: Any,
    specs: Mapping[str, Mapping[str, Any] | None],
    *,
    bias: Any = None,
) -> dict[str, float]:
    """Several AP2 / AP3 patterns of one layer pair, one value per named spec.

    Each spec is a dict of :func:`ap3` keyword arguments (family, covariance, scale, fit, projection,
    ...), or ``None`` / a dict with ``"measure": "ap2"`` for :func:`ap2` (its other keys, e.g.
    ``projection``, go to :func:`ap2`). A spec with ``"fold_bias": True`` compares
    :math:`[W, b]` with :math:`[\\tilde W, b]` (``bias`` folded in as a last column, as a latent
    fitted on the folded weights needs); the others compare ``w`` with ``w_pruned``.

    Parameters
    ----------
    w, w_pruned : Tensor of one shape
    specs : mapping name -> dict or None
    bias : Tensor (C,), optional
        Needed by the ``fold_bias`` specs.

    Returns
    -------
    dict name -> float, in the order of ``specs``.

    Raises
    ------
    TypeError
        A spec that is neither a mapping nor None.
    ValueError
        A ``fold_bias`` spec without ``bias``; errors of :func:`ap2` / :func:`ap3`.

    Examples
    --------
    >>> import torch
    >>> w = torch.tensor([[1.0, -2.0], [0.5, 3.0]]); wp = w * (w.abs() > 1)
    >>> pattern_values(w, wp, {"AP2": None, "AP3 s=1": {"scale": 1.0}})
    {'AP2': 1.25, 'AP3 s=1': 0.625}
    """
    out: dict[str, float] = {}
    for name, spec in specs.items():
        if spec is not None and not isinstance(spec, Mapping):
            raise TypeError(
                f"spec {name!r} must be a dict of keyword arguments or None; got {type(spec).__name__}"
            )
        kw = dict(spec or {})
        measure = kw.pop("measure", "ap3" if spec else "ap2")
        a, b_ = w, w_pruned
        if kw.pop("fold_bias", False):
            if bias is None:
                raise ValueError(f"spec {name!r} folds the bias: give bias=")
            a, b_ = fold_bias(w, bias), fold_bias(w_pruned, bias)
        check_choice(measure, f"measure of spec {name!r}", ("ap2", "ap3"))
        out[name] = ap2(a, b_, **kw) if measure == "ap2" else ap3(a, b_, **kw)
    return out
