r"""What a cell measures on its pruned last layer: AP2, every AP3 of the config, the extra measures.

An AP3 entry of a config (``{name: ..., family: ..., covariance: ..., fit: laplace, damping: ...}``)
is parsed by ONE parser, :func:`parse_ap3_spec`, used both by the config's validation and by the
measurement, so a key that one accepts the other cannot silently drop.

Per epoch ``t`` the cell records

* ``ap2`` = :math:`\lVert w - \tilde w_t \rVert_2^2` (:func:`latentkit.patterns.ap2`),
* ``ap3_<name>`` = :math:`\mathrm{KL}(P(w) \Vert P(\tilde w_t))` (:func:`latentkit.patterns.ap3`),
* the :data:`EXTRA_MEASURES` the config asks for, among them the reference code's two "AP3"s
  (:func:`reference_gauss_ap3`, :func:`reference_t_ap3`),
* the function-space measures of :class:`FunctionMeasure` (:data:`FUNCTION_MEASURES`): ``ap3_fn``,
  ``ap3_fn_quadratic`` and ``obd``, for all cells of a group at once.

Examples
--------
>>> from latentkit.grid.measures import AP3Spec
>>> AP3Spec('ap3_laplace', fit='laplace').fit
'laplace'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .._validation import check_int
from ..divergence import kl_monte_carlo
from ..latent import fit_laplace_linear, latent_space
from ..options import FAMILIES, FITS
from ..patterns import AP3Against, ap2, ap3
from ..pruning import degrees_of_freedom, lq_index, pq_index

__all__ = [
    "AP3_KEYS",
    "AP3Spec",
    "APMeasure",
    "EXTRA_MEASURES",
    "FUNCTION_MEASURES",
    "FunctionMeasure",
    "REFERENCE_MC",
    "dry_run_ap3",
    "extra_measures",
    "no_function_measures",
    "parse_ap3",
    "parse_ap3_spec",
    "reference_gauss_ap3",
    "reference_t_ap3",
]

#: Optional per-epoch measures of the pruned last layer (config field ``extra_measures``), name -> column.
#: ``lq``: :func:`latentkit.pruning.lq_index` (q = 0.5) of the pruned weights; ``pq``:
#: :func:`latentkit.pruning.pq_index` (p = 1, q = 2); ``logit_change``: :math:`\mathrm{tr}(D S D^\top)` with
#: :math:`D = W - \tilde W_t` and :math:`S = \frac1n\sum_i x_i x_i^\top` the uncentred second moment of the
#: dense network's penultimate training features (= mean squared change of the logits, bias aside);
#: ``dof_change``: :math:`|N(W S W^\top) - N(\tilde W_t S \tilde W_t^\top)|` with
#: :func:`latentkit.pruning.degrees_of_freedom` at :math:`\lambda = \mathrm{tr}(W S W^\top) / C`;
#: ``ap3_reference_gauss``: the reference code's Gaussian "AP3" (:func:`reference_gauss_ap3`);
#: ``ap3_reference_t``: its Monte Carlo Student-t AP3 (:func:`reference_t_ap3`; samples and repeats from
#: the config's ``reference_mc_samples`` / ``reference_mc_repeats``).
EXTRA_MEASURES: dict[str, str] = {
    "lq": "lq_index",
    "pq": "pq_index",
    "logit_change": "logit_change",
    "dof_change": "dof_change",
    "ap3_reference_gauss": "ap3_reference_gauss",
    "ap3_reference_t": "ap3_reference_t",
}

#: The reference code's Monte Carlo Student-t AP3: samples per repeat, repeats, df, chunks, seed.
REFERENCE_MC: dict[str, Any] = {"samples": 600_000, "repeats": 100, "df": 4.0, "num_chunks": 100, "seed": 0}

#: Keys an AP3 entry may hold: its name, the fit, and the keyword arguments of
#: :func:`latentkit.latent.latent_space` that a YAML file can express.
AP3_KEYS = (
    "name",
    "family",
    "covariance",
    "projection",
    "num_chunks",
    "scale",
    "df",
    "jitter",
    "fit",
    "damping",
    "remainder",
)
_DEFAULT_DAMPING = 1e-3


@dataclass(frozen=True)
class AP3Spec:
    """One parsed AP3 entry: column ``ap3_<name>``, the Laplace fit (if any) and the law's keywords."""

    name: str
    fit: str | None = None
    damping: float | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def column(self) -> str:
        return f"ap3_{self.name}"


def parse_ap3_spec(spec: Any) -> AP3Spec:
    """Parse one AP3 entry of a config; every rule names the entry and the key.

    Rules: a mapping with an identifier ``name`` (it becomes the column ``ap3_<name>``); only keys of
    :data:`AP3_KEYS`; ``family`` from :data:`latentkit.options.FAMILIES`; ``fit`` absent or from
    :data:`latentkit.options.FITS`; ``damping`` (> 0, default 1e-3) only together with ``fit: laplace``.

    Parameters
    ----------
    spec : mapping
        One entry of a config's ``ap3`` list (keys of :data:`AP3_KEYS`).

    Raises
    ------
    ValueError
        For a rule broken (the message says which entry and which key).
    """
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"each ap3 entry must be a mapping with a 'name'; got {spec!r}")
    name = spec["name"]
    if not str(name).isidentifier():
        raise ValueError(f"ap3 name {name!r} must be an identifier (it becomes column ap3_<name>)")
    unknown = [k for k in spec if k not in AP3_KEYS]
    if unknown:
        raise ValueError(
            f"ap3 latent {name!r} is invalid: unknown key(s) {unknown}; allowed keys: {list(AP3_KEYS)}"
        )
    fit = spec.get("fit")
    if fit is not None and fit not in FITS:
        raise ValueError(f"ap3 {name!r}: fit must be 'laplace' or absent; got {fit!r}")
    family = spec.get("family", "gaussian")
    if family not in FAMILIES:
        raise ValueError(f"unknown ap3 family {family!r}; expected one of {list(FAMILIES)}")
    damping = None
    if "damping" in spec:
        if fit != "laplace":
            raise ValueError(
                f"ap3 latent {name!r} is invalid: key 'damping' needs fit: laplace "
                f"(without a fit there is nothing to damp)"
            )
        damping = spec["damping"]
        if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not damping > 0:
            raise ValueError(f"ap3 latent {name!r} is invalid: damping must be a number > 0; got {damping!r}")
    if fit == "laplace":
        damping = float(_DEFAULT_DAMPING if damping is None else damping)
    kwargs = {k: v for k, v in spec.items() if k not in ("name", "fit", "damping")}
    return AP3Spec(name=str(name), fit=fit, damping=damping, kwargs=kwargs)


def parse_ap3(specs: Any) -> tuple[AP3Spec, ...]:
    """Parse the ``ap3`` list of a config (:func:`parse_ap3_spec` each; names unique).

    Parameters
    ----------
    specs : sequence of mappings
        The config's ``ap3`` entries (see :func:`parse_ap3_spec`).
    """
    if isinstance(specs, (str, Mapping)) or not isinstance(specs, Sequence):
        raise ValueError(f"ap3 must be a list of mappings; got {specs!r}")
    parsed = tuple(parse_ap3_spec(s) for s in specs)
    names = [p.name for p in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"ap3 names must be unique; got {names}")
    return parsed


def dry_run_ap3(specs: Sequence[AP3Spec]) -> None:
    """Evaluate every AP3 latent once on a small random layer, so that a bad option fails now."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 250, generator=g, dtype=torch.float64)
    fit = None
    for spec in specs:
        kw = dict(spec.kwargs)
        try:
            if spec.fit == "laplace":
                if fit is None:
                    x = torch.randn(300, 250, generator=g, dtype=torch.float64)
                    fit = fit_laplace_linear(x, x @ w.T, bias=False, damping=spec.damping)
                kw["fit"] = fit
            ap3(w, w * 0.5, **kw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"ap3 latent {spec.name!r} is invalid: {exc}") from exc


class APMeasure:
    r"""AP2, every AP3 and the extra measures between the dense last layer and a pruned/fine-tuned one.

    Parameters
    ----------
    specs : sequence of AP3Spec
        From :func:`parse_ap3`; the Laplace fits are computed once per damping from ``feats``/``logits``.
    extra : sequence of str
        Names of :data:`EXTRA_MEASURES`.
    w_dense : Tensor (C, F)
        Dense last-layer weights.
    feats, logits : Tensor (N, F), (N, C)
        The dense network's penultimate training features and its logits on them.
    mc_samples, mc_repeats : int
        Monte Carlo size of ``ap3_reference_t`` (default the reference's 600,000 x 100).
    """

    def __init__(
        self,
        specs: Sequence[AP3Spec],
        extra: Sequence[str],
        w_dense: torch.Tensor,
        feats: torch.Tensor,
        logits: torch.Tensor,
        mc_samples: int = REFERENCE_MC["samples"],
        mc_repeats: int = REFERENCE_MC["repeats"],
    ) -> None:
        self.w_dense = w_dense.detach()
        self.mc = (
            check_int(mc_samples, "mc_samples", minimum=2),
            check_int(mc_repeats, "mc_repeats", minimum=1),
        )
        self.specs: list[tuple[str, AP3Against]] = []
        fits: dict[float, Any] = {}
        for spec in specs:
            kw = dict(spec.kwargs)
            if spec.fit == "laplace":
                if spec.damping not in fits:
                    fits[spec.damping] = fit_laplace_linear(feats, logits, bias=False, damping=spec.damping)
                kw["fit"] = fits[spec.damping]
            # the dense latent once per group (and a Kronecker latent's factors once): bit-identical to ap3
            self.specs.append((spec.column, AP3Against(self.w_dense, **kw)))
        self.extra = list(extra)
        self.S: torch.Tensor | None = None
        self.lam: float | None = None
        self.dof_dense: float | None = None
        if any(m in ("logit_change", "dof_change") for m in self.extra):
            x = feats.detach().double()
            self.S = x.T @ x / x.shape[0]
            wd = self.w_dense.double()
            self.lam = float(torch.trace(wd @ self.S @ wd.T)) / wd.shape[0]
            self.dof_dense = (
                degrees_of_freedom(wd @ self.S @ wd.T, self.lam) if "dof_change" in self.extra else 0.0
            )

    def __call__(self, w: torch.Tensor) -> dict[str, float]:
        out = {"ap2": ap2(self.w_dense, w)}
        for col, against in self.specs:
            out[col] = against(w)
        if self.extra:
            out.update(extra_measures(self.extra, self.w_dense, w, self.S, self.lam, self.dof_dense, self.mc))
        return out


#: Columns of :class:`FunctionMeasure`, in the table's order.
FUNCTION_MEASURES = ("ap3_fn", "ap3_fn_quadratic", "obd")


class FunctionMeasure:
    r"""AP3_fn, its exact-Fisher quadratic and the OBD saliency of ``K`` last layers at once (float64).

    With the dense layer :math:`(W, b)`, a pruned / fine-tuned one :math:`(\tilde W_k, \tilde b_k)`,
    :math:`D_k = \tilde W_k - W`, :math:`p_x = \operatorname{softmax}(W x + b)`:

    .. math::

        \mathrm{ap3\_fn}_k = \frac1n \sum_{x \in \text{test}}
            \mathrm{KL}\big(p_x \Vert \operatorname{softmax}(\tilde z_{k,x})\big), \qquad
        \mathrm{ap3\_fn\_quadratic}_k = \frac1{2n} \sum_{x \in \text{test}}
            \Big[\sum_c p_{xc} u_c^2 - \big(\textstyle\sum_c p_{xc} u_c\big)^2\Big],
        \ u = D_k x + \tilde b_k - b,

    .. math::

        \mathrm{obd}_k = \tfrac12 \sum_{c,j} F_{cj} (D_k)_{cj}^2, \qquad
        F_{cj} = \frac1m \sum_{x \in \text{train}} p_{xc} (1 - p_{xc}) x_j^2,

    i.e. :func:`latentkit.patterns.ap3_fn`, :func:`latentkit.patterns.ap3_fn_quadratic` (on the
    unlabelled test features) and :func:`latentkit.patterns.obd_saliency` (exact Fisher diagonal on
    the training features) of every cell, batched over ``K``. :math:`\tilde z_{k,x}` is
    :math:`\tilde W_k x + \tilde b_k` on the dense features, or the pruned network's own logits
    where its backbone changed (``pruned_logits`` of :meth:`__call__`).

    Parameters
    ----------
    w_dense, b_dense : Tensor (C, F), (C,)
        Dense last layer.
    test_feats, train_feats : Tensor (n, F), (m, F)
        The dense network's penultimate features of the test and training sets.
    """

    def __init__(
        self,
        w_dense: torch.Tensor,
        b_dense: torch.Tensor,
        test_feats: torch.Tensor,
        train_feats: torch.Tensor,
    ) -> None:
        if w_dense.dim() != 2 or b_dense.shape != w_dense.shape[:1]:
            raise ValueError(
                f"w_dense must be (C, F) and b_dense (C,); got {tuple(w_dense.shape)}, {tuple(b_dense.shape)}"
            )
        for name, x in (("test_feats", test_feats), ("train_feats", train_feats)):
            if x.dim() != 2 or x.shape[1] != w_dense.shape[1]:
                raise ValueError(f"{name} must be (n, {w_dense.shape[1]}); got {tuple(x.shape)}")
        self.W, self.b = w_dense.detach().double(), b_dense.detach().double()
        self.X = test_feats.detach().double()
        z = self.X @ self.W.T + self.b
        self.logp = torch.log_softmax(z, dim=1)  # (n, C)
        self.p = self.logp.exp()
        Xtr = train_feats.detach().double()
        p_tr = torch.softmax(Xtr @ self.W.T + self.b, dim=1)
        self.fisher_diag = (p_tr * (1 - p_tr)).T @ (Xtr * Xtr) / Xtr.shape[0]  # (C, F)

    def __call__(
        self, W: torch.Tensor, b: torch.Tensor, pruned_logits: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``{column: Tensor (K,) float64}`` for the layers ``W (K, C, F)``, ``b (K, C)``.

        ``pruned_logits`` (K, n, C): the pruned networks' logits on the test set when their
        backbone is not the dense one (default: ``W`` and ``b`` applied to the dense features).
        """
        D = W.detach().double() - self.W  # (K, C, F)
        db = b.detach().double() - self.b  # (K, C)
        u = torch.matmul(self.X, D.transpose(1, 2)) + db[:, None, :]  # (K, n, C)
        if pruned_logits is None:
            z = torch.matmul(self.X, self.W.T) + self.b + u
        else:
            z = pruned_logits.detach().double()
        kl = (self.p * (self.logp - torch.log_softmax(z, dim=-1))).sum(-1).clamp_min(0.0).mean(-1)
        pu = (self.p * u).sum(-1)
        quad = (0.5 * ((self.p * u * u).sum(-1) - pu * pu).mean(-1)).clamp_min(0.0)
        obd = 0.5 * (self.fisher_diag * D * D).sum((1, 2))
        return {"ap3_fn": kl, "ap3_fn_quadratic": quad, "obd": obd}


def no_function_measures(
    W: torch.Tensor, b: torch.Tensor, pruned_logits: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """:class:`FunctionMeasure`'s stand-in in a grid with ``function_measures: false``: no columns."""
    return {}


def extra_measures(
    names: Sequence[str],
    w_dense: torch.Tensor,
    w: torch.Tensor,
    S: torch.Tensor | None,
    lam: float | None,
    dof_dense: float | None,
    mc: tuple[int, int] = (REFERENCE_MC["samples"], REFERENCE_MC["repeats"]),
) -> dict[str, float]:
    """The :data:`EXTRA_MEASURES` columns of one pruned last layer ``w`` (C, F) (float64 inside).

    ``mc`` = (samples, repeats) of ``ap3_reference_t``.
    """
    out: dict[str, float] = {}
    wp = w.detach().double()
    for name in names:
        if name == "lq":
            out["lq_index"] = float(lq_index(wp, q=0.5))
        elif name == "pq":
            out["pq_index"] = float(pq_index(wp, p=1.0, q=2.0))
        elif name == "logit_change":
            D = w_dense.double() - wp
            out["logit_change"] = float(torch.einsum("cf,fg,cg->", D, S, D))
        elif name == "dof_change":
            out["dof_change"] = abs(float(dof_dense) - degrees_of_freedom(wp @ S @ wp.T, lam))
        elif name == "ap3_reference_gauss":
            out["ap3_reference_gauss"] = reference_gauss_ap3(w_dense, wp)
        elif name == "ap3_reference_t":
            out["ap3_reference_t"] = reference_t_ap3(w_dense, wp, samples=mc[0], repeats=mc[1])
    return out


# ============================================================================ the reference code's "AP3"s
def reference_gauss_ap3(w_dense: torch.Tensor, w: torch.Tensor) -> float:
    r"""The reference code's Gaussian "AP3": a Mahalanobis length, not a KL divergence.

    .. math:: \sqrt{D^\top A D} = \sqrt{\frac{0.001}{\sqrt d}\,\lVert w - \tilde w \rVert_2^2},
              \qquad A = \frac{0.001}{\sqrt d} I_d, \quad D = \mathrm{vec}(w) - \mathrm{vec}(\tilde w)

    with ``d`` the number of weights: a fixed monotone function of AP2 (symmetric in its
    arguments), computed without the reference's dense ``d x d`` matrix (float64).

    Parameters
    ----------
    w_dense, w : Tensor, same shape
        Dense and pruned (fine-tuned) weights.

    Returns
    -------
    float
    """
    a, b = w_dense.detach().double().reshape(-1), w.detach().double().reshape(-1)
    if a.shape != b.shape:
        raise ValueError(
            f"w_dense and w must have the same number of entries; got {a.numel()} and {b.numel()}"
        )
    d = a.numel()
    return math.sqrt(0.001 / math.sqrt(d) * float(((a - b) ** 2).sum()))


def reference_t_ap3(
    w_dense: torch.Tensor,
    w: torch.Tensor,
    *,
    samples: int = REFERENCE_MC["samples"],
    repeats: int = REFERENCE_MC["repeats"],
    df: float = REFERENCE_MC["df"],
    num_chunks: int = REFERENCE_MC["num_chunks"],
    seed: int = REFERENCE_MC["seed"],
) -> float:
    r"""The reference code's Student-t AP3: Monte Carlo :math:`\mathrm{KL}(P(\tilde w) \Vert P(w))`.

    Both laws are multivariate t with location the reference's chunk means of the flattened
    weights (``remainder="reference"``: ``range(0, d, d // k)``, ``ceil(d / (d // k)) >= k + 1``
    chunks when ``k`` does not divide ``d``: 101 for the paper's layers), scale :math:`I` and ``df``
    degrees of freedom; the divergence runs from the pruned law to the dense one, as the reference, and
    is estimated as the mean over ``repeats``
    of :math:`\frac1n \sum_{i=1}^n [\log p_{\tilde w}(x_i) - \log p_w(x_i)]`,
    :math:`x_i \sim P(\tilde w)` (:func:`latentkit.divergence.kl_monte_carlo`, batched on the
    weights' device, on a GPU up to 2**26 numbers per batch, so that a repeat of 600,000 samples in
    101 dimensions is one batch; one ``torch.Generator`` seeded with ``seed`` per call: common random
    numbers across epochs and cells, unlike the reference's fresh draws).

    Returns
    -------
    float
        The estimate (it may be slightly negative: Monte Carlo noise around a small divergence).
    """
    kw = {"projection": "chunk_means", "num_chunks": num_chunks, "remainder": "reference", "df": df}
    p = latent_space(w.detach(), "student_t", "isotropic", **kw)
    q = latent_space(w_dense.detach(), "student_t", "isotropic", **kw)
    device = p.loc.device
    gen = torch.Generator(device=device).manual_seed(check_int(seed, "seed", minimum=0))
    # on a GPU, whole repeats at once (up to 2**26 numbers, 512 MB of float64); elsewhere the default
    batch = (
        min(check_int(samples, "samples", minimum=2), 2**26 // p.loc.numel())
        if device.type == "cuda"
        else None
    )
    mc = kl_monte_carlo(p, q, num_samples=samples, repeats=repeats, generator=gen, batch_size=batch)
    return float(mc.estimate)
