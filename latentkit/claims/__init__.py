r"""The paper's testable claims (2-7 in the book's chapter on the paper) as verdicts on a results table.

:func:`paper_claims` takes the tidy table of :func:`latentkit.grid.run_grid` and returns one
row per (claim, measure) with the evidence (numbers) and a verdict:

* ``"holds"`` -- every sub-test passed (claim 7: at least ``min_agreement`` of the pairs agree),
* ``"fails"`` -- none passed (claim 7: at most half of the pairs agree, no better than chance),
* ``"mixed"`` -- some did,
* ``"n/a"`` -- the table cannot test it (a method or a second sparsity missing, too few epochs,
  undefined correlations).

A *sub-test* is one (network, dataset) group and, depending on the claim, one correlation level, one
method, one sparsity, one epoch or one cell; ``passed`` / ``tests`` count them. All values are trial
means per (network, dataset, method, sparsity, epoch), as the paper plots them. The claims:

2. AP2 and every AP3 correlate positively with PD, across the method x sparsity grid (right after
   pruning and at the last epoch) and across cells and epochs: Spearman's :math:`\rho` from
   :func:`latentkit.stats.correlations` (through :func:`correlation_levels`); a sub-test
   passes if the lower end of its bootstrap CI is > 0. ``statistic`` = median :math:`\rho`.
3. AP2 tracks PD at least as well as AP3 (the reviewers' objection): for each AP3,
   :math:`\Delta = \rho(\mathrm{AP2}, \mathrm{PD}) - \rho(\mathrm{AP3}, \mathrm{PD})` with a *paired*
   percentile bootstrap (the same resampled points for both measures); a sub-test passes unless the
   CI lies entirely below 0 (AP3 significantly better). ``statistic`` = median :math:`\Delta`.
4. AP2, each AP3 and PD grow with sparsity, for each method, right after pruning (epoch 0) and at
   the last epoch: a sequence (ordered by sparsity) passes if every step is
   :math:`\ge -\text{monotone\_rtol} \cdot \max|x|` and the last value exceeds the first.
   ``statistic`` = fraction of monotone sequences.
5. At equal sparsity, lowest magnitude < random < highest magnitude, for AP2 and for PD, at epoch 0
   and at the last epoch: passes if :math:`x_{low} \le x_{rand} \le x_{high}` and
   :math:`x_{low} < x_{high}` (ties, e.g. two PDs of 0 pp, do not break the order).
   ``statistic`` = fraction ordered. The roles are played by the methods :func:`paper_roles`
   picks in each group: in reference mode ``random_reference`` and ``highest_reference``
   (the paper's own ``random`` / ``highest`` where present); the evidence names the methods used.
6. (a) AP3(t) and PD(t) settle together during fine-tuning: for each cell, a series has settled if
   its range over the last ``settle_epochs`` epochs (epochs :math:`T-k..T`) is at most
   ``settle_rtol`` times its range over the whole run (or at most an absolute tolerance:
   ``settle_pd_atol`` pp for PD, which is quantised to :math:`100/n_{test}` pp; 0 for AP3); a cell
   passes if both AP3 and PD settled. Needs :math:`T > k`. (b) low-sparsity lowest-magnitude nets
   return to about zero PD: each lowest-magnitude cell with sparsity :math:`\le`
   ``recover_max_sparsity`` passes if its final PD is < ``recover_pp``.
   ``statistic`` = fraction of cells passing. (c) a stricter reading of "together": within each
   cell, AP(t) and PD(t) co-move over the epochs ``0..T`` -- Spearman's :math:`\rho` across the
   cell's epochs (:func:`latentkit.stats.correlations`, ``level="within"``) with its
   bootstrap CI above 0; for AP2 and every AP3. ``statistic`` = median :math:`\rho` over cells;
   cells whose PD never changes (undefined :math:`\rho`) are not counted.
7. Where the AP ordering and the PD ordering disagree: every pair of cells comparable in the
   paper's sense (same sparsity, different methods; or same method, different sparsities) at
   epoch 0 and at the last epoch is concordant (AP and PD order it the same way), discordant, or
   tied (either difference 0, not counted). See :func:`ordering_disagreements`. ``statistic`` =
   fraction of discordant pairs.

Tables of cache version 2 on hold integer counts and ``delta_test = 100 (c - c_dense) / n``,
``pd_test = |delta_test|`` (the paper's PD) computed from them, so equal PDs are bit-equal and
are used as they are (the same values :mod:`latentkit.stats` ranks). In older tables PD was
:math:`|acc_{dense} - acc|` of float accuracies, so two PDs of one test image could differ in
their last bits; for those (no count columns) every function here first rounds the PD column to
:data:`PD_DECIMALS` (9) decimals. Claims 4, 5 and 7 also treat values that agree to a relative
:data:`TIE_RTOL` (``1e-9``) as equal.

Layout: :mod:`~latentkit.claims.tables` holds the public building blocks (correlation levels, claim
7's pairs, claim 6a's settled series, the methods' paper roles), :mod:`~latentkit.claims.verdicts`
one function per claim and :func:`paper_claims`, :mod:`~latentkit.claims._common` the shared
helpers. The statistics come from :mod:`latentkit.stats` and the vocabularies (:data:`VERDICTS`,
the paper's methods and the reference methods' roles) from :mod:`latentkit.options`; nothing here
imports torch.

Examples
--------
>>> from latentkit.claims import settled
>>> settled([3.0, 1.0, 1.0, 1.0, 1.0, 1.0])
False
>>> settled([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
False
"""

from __future__ import annotations

from ..options import VERDICTS
from ._common import PD_DECIMALS, TIE_RTOL
from .prose import (
    accuracy_change_summary,
    change_sentence,
    correlation_sentence,
    correlation_text,
    count_phrase,
    dense_accuracy,
    short_name,
    sign_disagreements,
    verdict_overview,
    verdict_sentence,
)
from .quoted import CLAIM_DIRECTIONS, CLAIM_SOURCES, corr_glue_name, level_token, quoted_correlations
from .tables import (
    correlation_levels,
    ordering_disagreements,
    paper_roles,
    resolve_levels,
    settled,
    settled_cells,
)
from .verdicts import paper_claims

__all__ = [
    "PD_DECIMALS",
    "TIE_RTOL",
    "VERDICTS",
    "accuracy_change_summary",
    "change_sentence",
    "correlation_sentence",
    "correlation_text",
    "count_phrase",
    "dense_accuracy",
    "short_name",
    "sign_disagreements",
    "verdict_overview",
    "verdict_sentence",
    "CLAIM_DIRECTIONS",
    "CLAIM_SOURCES",
    "corr_glue_name",
    "level_token",
    "quoted_correlations",
    "correlation_levels",
    "ordering_disagreements",
    "paper_claims",
    "paper_roles",
    "resolve_levels",
    "settled",
    "settled_cells",
]
