"""Solutions of notebook 00's self-checking exercises."""
import torch


def pairwise_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """00.1: the fraction (percent) of (anomaly, normal) pairs in which the anomaly scores higher; a tie counts 1/2."""
    a, n = scores[labels == 1], scores[labels == 0]
    diff = a[:, None] - n[None, :]
    return float(100 * ((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def in_attack_scores(clean: torch.Tensor, attacked: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """00.2: an in-attack perturbs only the normal images (label 0); anomalies keep their clean score."""
    return torch.where(labels == 0, attacked, clean)
