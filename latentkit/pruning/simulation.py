"""Random-weight networks pruned randomly and by magnitude: the output gap against width and threshold.

A numerical companion to Qian & Klabjan (2021, arXiv:2105.10065), who bound, with high probability,
the sup-norm distance between a network with i.i.d. random weights and its randomly or
magnitude-pruned version. We do not reproduce their exact distributional assumptions or constants;
we simulate the following and report what we measure.

Network (``depth`` hidden layers, ReLU, width n, input dimension d0, output dimension d_out)::

    h_1  = relu(W_1 x + b_1),   W_1 ~ N(0, 1/d0) entrywise, b_1 ~ N(0, 1)
                                (the input layer, never pruned)
    h_l  = relu(W_l h_{l-1}),   l = 2..depth,  W_l = (mu + sigma Z) / n
    f(x) = W_out h_depth,       W_out = (mu + sigma Z) / n,  Z ~ N(0, 1) i.i.d.

i.e. the layers whose fan-in is the width n use the mean-field scale 1/n (with mean ``mu``), so
f has a finite, non-trivial infinite-width limit. The layers of fan-in n are pruned:

- ``random`` with fraction p: each weight kept independently with probability 1 - p and the
  survivors rescaled by 1/(1 - p) (the unbiased construction); the gap is a centred sum of n
  independent terms of size O(1/n), so it shrinks like n^(-1/2);
- ``magnitude`` with threshold t: weights with ``|n w| < t`` are set to 0 (no rescaling); the gap tends
  to a non-zero limit E[...] that grows with t.

The sup over the unit ball ``{||x||_2 <= 1}`` is estimated by the max over ``n_inputs`` uniform points
followed by ``ascent_steps`` of projected normalised gradient ascent from the best ``n_starts`` of
them (a lower bound on the true sup). All trials of one configuration run as one batched tensor
program (``torch.bmm``); seeded with a ``torch.Generator`` on ``device``.

Examples
--------
>>> from latentkit.pruning.simulation import qian_klabjan_simulation
>>> t = qian_klabjan_simulation(widths=(8,), trials=2, n_inputs=16)
>>> len(t) > 0
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .._validation import check_fraction, check_int, check_nonnegative, check_positive, resolve_device

__all__ = ["qian_klabjan_simulation"]


def _ball(n: int, d: int, T: int, g: torch.Generator, device, dtype) -> torch.Tensor:
    z = torch.randn(T, n, d, generator=g, device=device, dtype=dtype)
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-300)
    r = torch.rand(T, n, 1, generator=g, device=device, dtype=dtype) ** (1.0 / d)
    return z * r


def _forward(x: torch.Tensor, W1, b1, hidden: Sequence[torch.Tensor], Wout) -> torch.Tensor:
    """x (T, N, d0) -> (T, N, d_out); weights batched over trials T."""
    h = torch.relu(torch.bmm(x, W1.transpose(1, 2)) + b1.unsqueeze(1))
    for W in hidden:
        h = torch.relu(torch.bmm(h, W.transpose(1, 2)))
    return torch.bmm(h, Wout.transpose(1, 2))


def _sup_gap(W1, b1, hid, out, hid_p, out_p, T, d0, n_inputs, n_starts, steps, lr, g, device, dtype):
    x = _ball(n_inputs, d0, T, g, device, dtype)
    with torch.no_grad():
        f = _forward(x, W1, b1, hid, out)
        fp = _forward(x, W1, b1, hid_p, out_p)
        gap = (f - fp).abs().amax(-1)  # (T, N)
        fsup = f.abs().amax(-1).amax(-1)
    best = gap.amax(-1)
    if steps > 0:
        k = min(n_starts, n_inputs)
        idx = gap.topk(k, dim=-1).indices
        z = torch.gather(x, 1, idx.unsqueeze(-1).expand(T, k, d0)).clone()
        for _ in range(steps):
            z.requires_grad_(True)
            obj = (_forward(z, W1, b1, hid, out) - _forward(z, W1, b1, hid_p, out_p)).abs().amax(-1)
            (grad,) = torch.autograd.grad(obj.sum(), z)
            with torch.no_grad():
                z = z + lr * grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-300)
                z = z / z.norm(dim=-1, keepdim=True).clamp_min(1.0)
                best = torch.maximum(best, obj.detach().amax(-1))
        with torch.no_grad():
            final = (
                (_forward(z, W1, b1, hid, out) - _forward(z, W1, b1, hid_p, out_p)).abs().amax(-1).amax(-1)
            )
            best = torch.maximum(best, final)
    return best, fsup


def _draw_and_prune(n, method, par, sizes, law, g, dev, dtype):
    """Draw one batch of ``T`` random networks of width ``n`` and prune their hidden/output layers.

    Returns ``(W1, b1, hidden, out, pruned, sparsity)`` with ``pruned`` the pruned hidden layers
    followed by the pruned output layer, and ``sparsity`` the achieved fraction per trial.
    """
    T, d0, dout, depth = sizes
    mean, std = law
    W1 = torch.randn(T, n, d0, generator=g, device=dev, dtype=dtype) / d0**0.5
    b1 = torch.randn(T, n, generator=g, device=dev, dtype=dtype)
    hid = [
        (mean + std * torch.randn(T, n, n, generator=g, device=dev, dtype=dtype)) / n
        for _ in range(depth - 1)
    ]
    out = (mean + std * torch.randn(T, dout, n, generator=g, device=dev, dtype=dtype)) / n
    pruned, kept, total = [], 0, 0
    for W in hid + [out]:
        if method == "random":
            keep = torch.rand(W.shape, generator=g, device=dev, dtype=dtype) >= par
            Wp = W * keep / (1.0 - par)
        else:
            keep = (W * n).abs() >= par
            Wp = W * keep
        kept += keep.sum(dim=(1, 2))
        total += keep[0].numel()
        pruned.append(Wp)
    return W1, b1, hid, out, pruned, 1.0 - kept.to(dtype) / total


def qian_klabjan_simulation(
    widths: Sequence[int] = (16, 64, 256, 1024),
    *,
    prune_fractions: Sequence[float] = (0.5,),
    thresholds: Sequence[float] = (0.25, 0.5, 1.0),
    methods: Sequence[str] = ("random", "magnitude"),
    depth: int = 1,
    input_dim: int = 4,
    output_dim: int = 1,
    mean: float = 1.0,
    std: float = 1.0,
    trials: int = 16,
    n_inputs: int = 256,
    n_starts: int = 8,
    ascent_steps: int = 10,
    ascent_lr: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    dtype: torch.dtype = torch.float64,
) -> pd.DataFrame:
    r"""Sup-norm output gap between random-weight networks and their pruned versions.

    See the module docstring for the network, the two pruning rules and the sup estimate.

    Parameters
    ----------
    widths
        Widths n (hidden units per layer) to simulate.
    prune_fractions
        Fractions p in [0, 1) for ``random`` pruning.
    thresholds
        t >= 0 for ``magnitude`` pruning, in units of the weight scale 1/n.
    methods
        Subset of ("random", "magnitude").
    depth
        Number of hidden layers (>= 1); memory grows like ``trials * depth * width^2``.
    input_dim, output_dim
        d0 and d_out.
    mean, std
        mu and sigma of the width-scaled weights (n W ~ N(mu, sigma^2)).
    trials
        Independent networks per configuration (batched).
    n_inputs, n_starts, ascent_steps, ascent_lr
        Sup-norm estimate.
    seed
        Seed of the generator; configuration i uses seed + i, so results do not depend on which
        other configurations are run.
    device, dtype
        Where and in which precision to simulate.

    Returns
    -------
    pandas.DataFrame
        One row per (method, width, parameter, trial): ``method, width, parameter`` (p or t),
        ``sparsity`` (achieved fraction of pruned weights among the pruned layers), ``trial``,
        ``gap`` (estimated sup over the unit ball of ``max_k |f_k - f~_k|``), ``output_sup`` (same
        estimate of ``sup |f|``, on the sampled points) and ``relative_gap = gap / output_sup``.
    """
    for arg, value in (("widths", widths), ("prune_fractions", prune_fractions), ("thresholds", thresholds),
                       ("methods", methods)):  # fmt: skip
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError(f"{arg} must be a sequence; got {type(value).__name__}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating torch.dtype; got {dtype!r}")
    if isinstance(mean, bool) or not isinstance(mean, (numbers.Real, np.number)):
        raise TypeError(f"mean must be a real number; got {type(mean).__name__}")
    if not math.isfinite(float(mean)):
        raise ValueError(f"mean must be finite; got {mean!r}")
    widths = [check_int(w, "width", minimum=1) for w in widths]
    if not widths:
        raise ValueError("widths is empty")
    for m in methods:
        if m not in ("random", "magnitude"):
            raise ValueError(f"unknown method {m!r}; expected 'random' or 'magnitude'")
    ps = [check_fraction(p, "prune fraction", high_open=True) for p in prune_fractions]
    ts = [check_nonnegative(t, "threshold") for t in thresholds]
    depth = check_int(depth, "depth", minimum=1)
    d0 = check_int(input_dim, "input_dim", minimum=1)
    dout = check_int(output_dim, "output_dim", minimum=1)
    T = check_int(trials, "trials", minimum=1)
    n_inputs = check_int(n_inputs, "n_inputs", minimum=1)
    n_starts = check_int(n_starts, "n_starts", minimum=1)
    steps = check_int(ascent_steps, "ascent_steps", minimum=0)
    lr = check_positive(ascent_lr, "ascent_lr")
    std = check_nonnegative(std, "std")
    seed = check_int(seed, "seed", minimum=0)
    dev = resolve_device(device)
    rows: list[dict] = []
    config = 0
    for n in widths:
        for method in methods:
            params = ps if method == "random" else ts
            for par in params:
                g = torch.Generator(device=dev)
                g.manual_seed(seed + config)
                config += 1
                W1, b1, hid, out, pruned, sp = _draw_and_prune(
                    n, method, par, (T, d0, dout, depth), (mean, std), g, dev, dtype
                )
                gap, fsup = _sup_gap(
                    W1, b1, hid, out, pruned[:-1], pruned[-1], T, d0,
                    n_inputs, n_starts, steps, lr, g, dev, dtype,
                )  # fmt: skip
                for t in range(T):
                    gt, ft = float(gap[t]), float(fsup[t])
                    rows.append(
                        {
                            "method": method,
                            "width": n,
                            "parameter": float(par),
                            "sparsity": float(sp[t]),
                            "trial": t,
                            "gap": gt,
                            "output_sup": ft,
                            "relative_gap": gt / ft if ft > 0 else float("inf"),
                        }
                    )
    return pd.DataFrame(rows)
