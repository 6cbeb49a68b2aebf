"""Projections of a weight tensor to a latent location: identity, chunk means, rows; bias folding.

Examples
--------
>>> import torch
>>> w = torch.arange(1.0, 13.0).reshape(3, 4)
>>> from latentkit.latent.projection import project
>>> tuple(project(w, 'identity').shape)
(12,)
>>> tuple(project(w, 'chunk_means', num_chunks=2).shape)
(2,)
"""

from __future__ import annotations

from typing import Any

import torch

from .._validation import as_tensor, check_choice, check_int, check_same_device
from ..options import CHUNK_REMAINDERS, PROJECTIONS
from ._args import _check_same_dtype

__all__ = ["project", "fold_bias"]


def project(
    weight: Any, projection: str = "identity", num_chunks: int = 100, *, remainder: str = "split"
) -> torch.Tensor:
    """Project a weight tensor to the latent location.

    Parameters
    ----------
    weight : Tensor, any shape with ``d`` entries
        The layer's weights (kept on their device and dtype).
    projection : {"identity", "chunk_means", "rows"}
        * ``identity``: ``vec(w)``, shape ``(d,)`` (row-major flatten).
        * ``chunk_means``: ``(k,)`` means of ``k = num_chunks`` contiguous chunks of ``vec(w)``
          (the reference code's trick). Remainder policy: with ``d = q k + m``, the first ``m``
          chunks have ``q + 1`` entries, the rest ``q`` (as :func:`torch.tensor_split`).
        * ``rows``: ``(out, d_in)`` with ``w.reshape(w.shape[0], -1)``, one row per output
          neuron / channel.
    num_chunks : int
        ``k`` for ``chunk_means``; ``1 <= k <= d``.
    remainder : {"split", "reference"}
        Remainder policy of ``chunk_means`` (checked, without effect, for the other projections).
        ``"split"`` (default): exactly ``k`` chunks as above. ``"reference"``: the reference code's
        grouping ``range(0, d, q)`` with ``q = d // k``, i.e. chunks ``[j q, min((j + 1) q, d))``
        for ``j = 0 .. ceil(d / q) - 1``: ``k`` chunks of ``q`` entries when ``k`` divides ``d``,
        else ``ceil(d / q) >= k + 1`` chunks, the last one short (``d mod q`` entries) when ``q``
        does not divide ``d``.
        With ``d = 40960, k = 100``: 100 chunks of 409 and one of 60.

    Returns
    -------
    Tensor
        The projected weights.

    Raises
    ------
    ValueError
        Unknown projection or remainder, NaN/inf weights, ``num_chunks`` outside ``[1, d]``.
    """
    projection = check_choice(projection, "projection", PROJECTIONS)
    remainder = check_choice(remainder, "remainder", CHUNK_REMAINDERS)
    w = as_tensor(weight, "weight", min_dim=1)
    if projection == "identity":
        return w.reshape(-1)
    if projection == "rows":
        return w.reshape(w.shape[0], -1)
    k = check_int(num_chunks, "num_chunks", minimum=1)
    flat = w.reshape(-1)
    d = flat.numel()
    if k > d:
        raise ValueError(f"num_chunks={k} exceeds the number of weights d={d}")
    if remainder == "reference":
        return _reference_chunk_means(flat, d // k)
    q, m = divmod(d, k)
    head = flat[: m * (q + 1)].reshape(m, q + 1).mean(dim=1) if m else flat.new_empty(0)
    tail = flat[m * (q + 1) :].reshape(k - m, q).mean(dim=1)
    return torch.cat([head, tail])


def _reference_chunk_means(flat: torch.Tensor, q: int) -> torch.Tensor:
    r"""Means of the chunks ``flat[i : i + q]`` for ``i in range(0, d, q)`` (the last one may be short).

    .. math:: \bar w_j = \frac{1}{|C_j|} \sum_{i \in C_j} w_i, \quad C_j = [j q, \min((j + 1) q, d))
    """
    d = flat.numel()
    full, rest = divmod(d, q)
    body = flat[: full * q].reshape(full, q).mean(dim=1)
    if not rest:
        return body
    return torch.cat([body, flat[full * q :].mean().reshape(1)])


def fold_bias(weight: Any, bias: Any) -> torch.Tensor:
    """``[W, b]``: a linear layer's weight ``(C, in)`` with its bias ``(C,)`` as a last column.

    The result ``(C, in + 1)`` is the matrix whose latent law :func:`fit_laplace_linear` (with
    ``bias=True``) describes.

    Parameters
    ----------
    weight : torch.Tensor or array-like, shape (C, in)
        The layer's weight matrix.
    bias : torch.Tensor or array-like, shape (C,)
        Its bias, one entry per output row.
    """
    W = as_tensor(weight, "weight", min_dim=2)
    b = as_tensor(bias, "bias", min_dim=1)
    check_same_device(W, b, "weight", "bias")
    _check_same_dtype(W, b, "weight", "bias")
    if W.dim() != 2 or b.dim() != 1 or b.shape[0] != W.shape[0]:
        raise ValueError(f"weight must be (C, in) and bias (C,); got {tuple(W.shape)} and {tuple(b.shape)}")
    return torch.cat([W, b[:, None]], dim=1)
