"""Solutions of notebook 09's self-checking exercises."""
import math

import torch
import torch.nn.functional as F


def mean_sd(values: list[float]) -> tuple[float, float]:
    """09.1: the sample standard deviation divides by n - 1 (one value: 0)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, sd


def knn_cosine_score(queries: torch.Tensor, bank: torch.Tensor, k: int) -> torch.Tensor:
    """09.2: unit rows, cosine similarity to every bank row, mean of (1 - cos) over the k most similar."""
    sims = F.normalize(queries, dim=1) @ F.normalize(bank, dim=1).T
    return (1 - sims.topk(k, dim=1).values).mean(1)
