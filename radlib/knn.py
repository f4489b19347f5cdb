"""Nearest-neighbour kernels: memory-bounded max-cosine, k-nearest cosine and Euclidean search over a bank.

Shared by the feature scores (:mod:`radlib.score`) and the pixel kNN of :mod:`radlib.certify`. The search
runs without autograd, ``chunk_size`` bank rows at a time; the winners' similarities or distances are then
recomputed under autograd (the exact subgradient), so the scores stay differentiable for the attacks.

Example:
    >>> import torch
    >>> from radlib.knn import knn_distance, max_cosine
    >>> bank = torch.eye(3)
    >>> max_cosine(torch.tensor([[1.0, 0.0, 0.0]]), bank).tolist()
    [1.0]
    >>> round(knn_distance(torch.tensor([[1.0, 1.0, 0.0]]), bank, k=2).item(), 4)  # 1 - cos 45 deg, twice
    0.2929
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["max_cosine", "knn_distance", "chunked_topk", "topk_dot", "topk_euclidean", "chunked_argmax_dot",
           "rows_per_chunk", "CPU_BLOCK_ELEMENTS",
           "gather_dot", "check_chunk_size"]


#: on a CPU, the most query x bank values one chunk holds (4 MiB of float32). A larger block is a fresh ``mmap``
#: that the kernel zero-fills page by page on every attack step (glibc never keeps blocks over 32 MiB for reuse):
#: the patch score's PGD-20 on the `cpu` profile took 8.6-9.8 s with 4096-row chunks and 6.4-9.1 s (median 6.7)
#: with blocks under this cap, 1.3 million page faults -> 98 thousand (``bench_cpu_memory.py``;
#: ``benchmarks/RESULTS.md``, "CPU memory reuse"). GPUs keep ``chunk_size`` (their allocator caches).
CPU_BLOCK_ELEMENTS = 2 ** 20


def rows_per_chunk(n_queries: int, chunk_size: int, device: torch.device) -> int:
    """Bank rows to compare at a time: ``chunk_size``, capped on a CPU so that ``n_queries`` x rows stays within
    :data:`CPU_BLOCK_ELEMENTS` (at least one row). A search finds the same rows whatever the chunk (ties
    aside in the top-k searches)."""
    if device.type != "cpu":
        return chunk_size
    return max(1, min(chunk_size, CPU_BLOCK_ELEMENTS // max(1, n_queries)))


def chunked_argmax_dot(queries: torch.Tensor, bank: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """Index of the bank row with the largest dot product, per query, scanning ``chunk_size`` rows at a time.

    queries: (B, N, d), bank: (B, M, d), same dtype/device. Returns int64 (B, N). No autograd.
    Ties go to the lowest index (first chunk wins, as ``torch.max`` does within a chunk).
    """
    chunk_size = rows_per_chunk(queries.shape[0] * queries.shape[1], chunk_size, queries.device)
    with torch.no_grad():
        best_val: torch.Tensor | None = None
        best_idx: torch.Tensor | None = None
        for start in range(0, bank.shape[1], chunk_size):
            sims = torch.bmm(queries, bank[:, start:start + chunk_size].transpose(1, 2))  # (B, N, c)
            val, idx = sims.max(dim=2)
            idx = idx + start
            if best_val is None or best_idx is None:
                best_val, best_idx = val, idx
            else:
                better = val > best_val
                best_val = torch.where(better, val, best_val)
                best_idx = torch.where(better, idx, best_idx)
    assert best_idx is not None
    return best_idx


def chunked_topk(block: Callable[[int, int], torch.Tensor], n_bank: int, k: int, chunk_size: int, *,
                 largest: bool = True) -> torch.Tensor:
    """Indices (N, k) of the ``k`` bank rows with the largest (``largest``) or smallest value per query.

    ``block(start, stop)`` gives the (N, stop - start) values of the queries against bank rows
    ``start:stop``; the bank is scanned ``chunk_size`` rows at a time (peak memory ~ N * (k + chunk_size)),
    keeping the running best k. No autograd: recompute the winners' values under autograd where needed.
    """
    with torch.no_grad():
        best_val: torch.Tensor | None = None
        best_idx: torch.Tensor | None = None
        for start in range(0, n_bank, chunk_size):
            vals = block(start, min(start + chunk_size, n_bank))  # (N, c)
            idx = torch.arange(start, start + vals.shape[1], device=vals.device).expand_as(vals)
            if best_val is not None and best_idx is not None:
                vals = torch.cat([best_val, vals], dim=1)
                idx = torch.cat([best_idx, idx], dim=1)
            best_val, pos = vals.topk(min(k, vals.shape[1]), dim=1, largest=largest)
            best_idx = idx.gather(1, pos)
    assert best_idx is not None
    return best_idx


def topk_dot(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Indices (N, k) of the ``k`` bank rows with the largest dot product per query; queries (N, d), bank (M, d)."""
    return chunked_topk(lambda s, e: queries @ bank[s:e].T, bank.shape[0], k,
                        rows_per_chunk(queries.shape[0], chunk_size, queries.device))


def topk_euclidean(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk_size: int,
                   bank_sq: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (N, k) of the ``k`` nearest bank rows in Euclidean distance; queries (N, D), bank (M, D).

    Squared distances are expanded as ``|q|^2 - 2 q.b + |b|^2`` (``bank_sq``: the precomputed ``|b|^2``, (M,)).
    """
    with torch.no_grad():
        q_sq = (queries ** 2).sum(dim=1, keepdim=True)
        b_sq = (bank ** 2).sum(dim=1) if bank_sq is None else bank_sq
        return chunked_topk(lambda s, e: q_sq - 2 * queries @ bank[s:e].T + b_sq[s:e], bank.shape[0], k,
                            rows_per_chunk(queries.shape[0], chunk_size, queries.device), largest=False)


def gather_dot(queries: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Differentiable ``<queries[b, n], bank[b, idx[b, n]]>``: queries (B, N, d), bank (B, M, d), idx (B, N)."""
    rows = torch.gather(bank, 1, idx.unsqueeze(-1).expand(-1, -1, bank.shape[-1]))
    return (queries * rows).sum(-1)


def check_chunk_size(chunk_size: int) -> int:
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


def _check_pair(queries: torch.Tensor, bank: torch.Tensor) -> None:
    if queries.dim() != 2 or bank.dim() != 2:
        raise ValueError(f"queries and bank must be 2-D (N, d) / (M, d), got {tuple(queries.shape)} / "
                         f"{tuple(bank.shape)}")
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(f"feature sizes differ: queries d={queries.shape[1]}, bank d={bank.shape[1]}")
    if bank.shape[0] == 0:
        raise ValueError("bank is empty")


def max_cosine(queries: torch.Tensor, bank: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """Largest cosine similarity of each query to any bank row, memory-bounded and differentiable.

    Args:
        queries: float (N, d); bank: float (M, d) on the same device (neither needs to be normalised).
        chunk_size: bank rows compared at a time (peak extra memory ~ N * chunk_size floats).
    Returns:
        float (N,) in [-1, 1]; gradients flow to ``queries`` (and ``bank``) through the winning row.
    """
    _check_pair(queries, bank)
    check_chunk_size(chunk_size)
    q = F.normalize(queries, dim=1).unsqueeze(0)
    b = F.normalize(bank, dim=1).unsqueeze(0)
    idx = chunked_argmax_dot(q, b, chunk_size)
    return gather_dot(q, b, idx)[0]


def knn_distance(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk_size: int = 4096) -> torch.Tensor:
    """Mean cosine distance (1 - cos) of each query to its ``k`` nearest bank rows (MSC-style kNN score).

    Args:
        queries: float (N, d); bank: float (M, d), same device; both are L2-normalised here.
        k: neighbours, 1 <= k <= M.
        chunk_size: bank rows compared at a time.
    Returns:
        float (N,) in [0, 2], higher = farther from the training data; differentiable w.r.t. ``queries``.
    """
    _check_pair(queries, bank)
    check_chunk_size(chunk_size)
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= bank.shape[0]:
        raise ValueError(f"k must be an int in [1, {bank.shape[0]}] (bank size), got {k!r}")
    q = F.normalize(queries, dim=1)
    b = F.normalize(bank, dim=1)
    idx = topk_dot(q, b, k, chunk_size)  # (N, k)
    sims = (q.unsqueeze(1) * b[idx]).sum(-1)  # (N, k)
    return (1.0 - sims).mean(dim=1)
