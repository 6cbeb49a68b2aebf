r"""AP3 of two latent laws with the same scale, as a function of the squared distance of their means.

For two Student-t laws :math:`t_\nu(m_p, S)` and :math:`t_\nu(m_q, S)` in :math:`d` dimensions the
KL depends on the means only through :math:`\Delta^2 = (m_p - m_q)^T S^{-1} (m_p - m_q)`
(:func:`~latentkit.divergence.student_t_kl_from_distance`), and it tends to the Gaussian value
:math:`\Delta^2 / 2` as :math:`\nu \to \infty`. :func:`kl_from_squared_distance` takes
:math:`\nu \in (0, \infty]`, with :math:`\nu = \infty` meaning the Gaussian law, so one call sweeps
the degrees of freedom up to and including the Gaussian limit (with :math:`S = I` and the chunk
means as the latent, :math:`\Delta^2` is the chunk-mean AP2 and the value is the Student-t AP3).

Examples
--------
>>> from latentkit.divergence.equal_scale import kl_from_squared_distance
>>> round(kl_from_squared_distance(1.0, 1e6, 2), 4)
0.5
"""

from __future__ import annotations

import math
from typing import Any

from .._validation import check_int, check_nonnegative, check_positive
from .student_t import student_t_kl_from_distance

__all__ = ["kl_from_squared_distance"]


def kl_from_squared_distance(distance_sq: Any, df: Any, dim: Any) -> float:
    r"""KL between two equal-scale laws whose means are at squared Mahalanobis distance ``distance_sq``.

    .. math::

        \mathrm{KL} = \begin{cases}
            \Delta^2 / 2 & \nu = \infty \text{ (Gaussian laws)}, \\
            \mathrm{KL}_{t_\nu}(\sqrt{\Delta^2}; d) & 0 < \nu < \infty,
        \end{cases}

    the second being :func:`~latentkit.divergence.student_t_kl_from_distance` at
    :math:`\delta = \sqrt{\Delta^2}` (exact one-dimensional integral, see there).

    Parameters
    ----------
    distance_sq : float >= 0
        :math:`\Delta^2 = (m_p - m_q)^T S^{-1} (m_p - m_q)` (for the isotropic unit scale: AP2 of
        the latent means).
    df : float > 0, or ``math.inf`` / ``numpy.inf``
        Degrees of freedom :math:`\nu`; infinity gives the Gaussian value.
    dim : int >= 1
        Dimension :math:`d` of the latent (used by the Student-t KL only).

    Returns
    -------
    float

    Raises
    ------
    TypeError
        A non-number (or a boolean) for ``distance_sq`` or ``df``, a non-integer ``dim``.
    ValueError
        A negative or non-finite ``distance_sq``, ``df <= 0`` or NaN, ``dim < 1``.
    """
    d2 = check_nonnegative(distance_sq, "distance_sq")
    d = check_int(dim, "dim", minimum=1)
    nu = check_positive(df, "df", allow_inf=True)
    if math.isinf(nu):
        return 0.5 * d2
    return student_t_kl_from_distance(math.sqrt(d2), nu, d)
