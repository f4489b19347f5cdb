"""Solutions of notebook 07's self-checking exercises."""
import torch
import torch.nn.functional as F


def cosine_shift(clean: torch.Tensor, attacked: torch.Tensor) -> torch.Tensor:
    """07.1: per row, 1 - cos(clean projection, attacked projection)."""
    return 1 - (F.normalize(clean, dim=1) * F.normalize(attacked, dim=1)).sum(1)


def class_gap(normal: torch.Tensor, anomaly: torch.Tensor) -> torch.Tensor:
    """07.2: the centroids of the unit-normalised features of each group, then 1 - their cosine."""
    mu_n, mu_a = F.normalize(normal, dim=1).mean(0), F.normalize(anomaly, dim=1).mean(0)
    return 1 - (mu_n @ mu_a) / (mu_n.norm() * mu_a.norm())
