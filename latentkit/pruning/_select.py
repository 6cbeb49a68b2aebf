"""Exact, memory-light selection of the k smallest scores across one or many tensors.

The engine behind every mask in :mod:`latentkit.pruning`. Scores are non-negative finite floats, so
their IEEE-754 bit patterns, read as signed integers, are ordered exactly like the floats. A radix
select on those integers (16 bits per pass, ``torch.bincount`` histograms) finds the k-th smallest
score without sorting and without concatenating the tensors: the working memory is one chunk
(``CHUNK`` elements) plus a 65536-bin histogram, whatever the size of the model. Everything runs on
the scores' device; only a handful of scalars cross to the host.

Order and ties
--------------
Entries are ranked by the pair (score, position), lexicographically, where position is the flat
(row-major) index inside a tensor and tensors come in the order they are given (module order for a
model). The k smallest entries under that total order are selected: among equal scores the entry
with the lower position is ranked smaller. This is what ``numpy.lexsort((position, score))`` gives,
and what the tests compare against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

#: elements per chunk (16 MiB of float32); bounds the working memory of a pass.
CHUNK = 1 << 22

_INT_FOR_FLOAT = {torch.float32: torch.int32, torch.float64: torch.int64}
_NBITS = {torch.int32: 32, torch.int64: 64}


@dataclass
class ScoreSource:
    """Scores of one tensor, produced chunk by chunk in flat order.

    Attributes
    ----------
    numel : int
        Number of entries.
    device : torch.device
        Where the scores live.
    make : callable(start, stop) -> Tensor
        Returns the 1-D scores of flat positions ``start:stop`` (non-negative, finite, floating).
        Chunks are always requested in increasing order within a pass, so a stateful producer
        (a random generator) may rely on it as long as ``reset`` restarts it.
    candidates : Tensor or None
        Flat tensor, nonzero where an entry may be selected (e.g. an existing pruning mask).
        Entries outside the candidates are never selected (they rank after every candidate).
    reset : callable or None
        Called before every pass over this source.
    """

    numel: int
    device: torch.device
    make: Callable[[int, int], torch.Tensor]
    candidates: torch.Tensor | None = None
    reset: Callable[[], None] | None = None

    def chunks(self, chunk: int = CHUNK) -> Iterator[tuple[int, int, torch.Tensor]]:
        if self.reset is not None:
            self.reset()
        for start in range(0, self.numel, chunk):
            stop = min(start + chunk, self.numel)
            yield start, stop, self.make(start, stop)

    def num_candidates(self) -> int:
        if self.candidates is None:
            return self.numel
        return int(torch.count_nonzero(self.candidates).item())


def tensor_source(scores: torch.Tensor, candidates: torch.Tensor | None = None) -> ScoreSource:
    """A :class:`ScoreSource` over an already materialised tensor of scores."""
    flat = scores.reshape(-1)
    cand = None if candidates is None else candidates.reshape(-1)
    return ScoreSource(flat.numel(), flat.device, lambda a, b: flat[a:b], cand)


def _score_dtype(sources: Sequence[ScoreSource], probe: Sequence[torch.dtype]) -> torch.dtype:
    return torch.float64 if any(d == torch.float64 for d in probe) else torch.float32


def _bits(chunk: torch.Tensor, dtype: torch.dtype, cand: torch.Tensor | None) -> torch.Tensor:
    """Integer view of non-negative float scores; non-candidates get the largest integer."""
    c = chunk.to(dtype)
    b = c.view(_INT_FOR_FLOAT[dtype])
    if cand is not None:
        b = torch.where(cand != 0, b, torch.iinfo(b.dtype).max)
    return b


class _Selector:
    """k-smallest selection over a list of sources (see module docstring for the order)."""

    def __init__(self, sources: Sequence[ScoreSource], score_dtype: torch.dtype, chunk: int = CHUNK):
        if score_dtype not in _INT_FOR_FLOAT:
            raise ValueError(f"score dtype must be float32 or float64; got {score_dtype}")
        devices = {s.device for s in sources}
        if len(devices) > 1:
            raise ValueError(
                f"all tensors of one selection must be on one device; got {sorted(map(str, devices))}"
            )
        self.sources = list(sources)
        self.dtype = score_dtype
        self.chunk = chunk
        self.device = next(iter(devices))
        self.int_dtype = _INT_FOR_FLOAT[score_dtype]

    def _iter_bits(self) -> Iterator[tuple[int, int, int, torch.Tensor]]:
        for i, src in enumerate(self.sources):
            for a, b, sc in src.chunks(self.chunk):
                cand = None if src.candidates is None else src.candidates[a:b]
                yield i, a, b, _bits(sc, self.dtype, cand)

    def kth_smallest(self, k: int) -> tuple[int, int]:
        """Bits ``T`` of the k-th smallest score (1-based k) and ``r``, how many entries equal to
        ``T`` belong to the k smallest (the first ``r`` of them in position order)."""
        nbits = _NBITS[self.int_dtype]
        shifts = list(range(nbits - 16, -1, -16))
        prefix = 0
        kk = k
        for level, shift in enumerate(shifts):
            hist = torch.zeros(65536, dtype=torch.int64, device=self.device)
            for _, _, _, bits in self._iter_bits():
                if level == 0:
                    digits = bits >> shift
                else:
                    sel = bits[(bits >> (shift + 16)) == prefix]
                    if sel.numel() == 0:
                        continue
                    digits = (sel >> shift) & 0xFFFF
                hist += torch.bincount(digits.reshape(-1), minlength=65536)
            cum = torch.cumsum(hist, 0)
            d = int(torch.searchsorted(cum, torch.tensor([kk], device=self.device, dtype=cum.dtype)).item())
            below = int(cum[d - 1].item()) if d > 0 else 0
            kk -= below
            prefix = (prefix << 16) | d
        return prefix, kk

    def select(self, k: int) -> list[torch.Tensor]:
        """Flat boolean tensors (one per source): True for the k smallest entries."""
        out = [torch.zeros(s.numel, dtype=torch.bool, device=self.device) for s in self.sources]
        if k <= 0:
            return out
        T, r = self.kth_smallest(k)
        for i, a, b, bits in self._iter_bits():
            sel = bits < T
            if r > 0:
                eq = bits == T
                c = int(torch.count_nonzero(eq).item())
                if c <= r:
                    sel |= eq
                    r -= c
                elif c > 0:
                    idx = torch.nonzero(eq).reshape(-1)[:r]
                    sel[idx] = True
                    r = 0
            out[i][a:b] = sel
        return out


def select_smallest(
    sources: Sequence[ScoreSource], k: int, *, score_dtype: torch.dtype | None = None, chunk: int = CHUNK
) -> list[torch.Tensor]:
    """Boolean masks (flat, one per source) marking the ``k`` smallest candidate entries.

    Parameters
    ----------
    sources : sequence of ScoreSource
        Scores (non-negative, finite) of each tensor; all on one device.
    k : int
        How many entries to select, ``0 <= k <=`` total number of candidates.
    score_dtype : torch.dtype, optional
        float32 or float64 (default: float64 if the first chunk of any source is float64, else
        float32). Scores are cast to it; float16/bfloat16 scores are represented exactly in float32.

    Returns
    -------
    list of Tensor
        ``bool`` tensors of shape ``(numel,)``: exactly ``k`` True entries in total, chosen by the
        (score, position) order of the module docstring.
    """
    if score_dtype is None:
        probe = []
        for s in sources:
            if s.numel:
                if s.reset is not None:
                    s.reset()
                probe.append(s.make(0, min(1, s.numel)).dtype)
        score_dtype = _score_dtype(sources, probe)
    return _Selector(sources, score_dtype, chunk).select(k)
