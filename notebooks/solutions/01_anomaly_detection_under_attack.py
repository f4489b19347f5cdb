"""Solutions of notebook 01's self-checking exercises."""
import torch


def rank_auroc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """01.1: AUROC = U / (n_anomaly * n_normal), U = (sum of the anomalies' ranks) - n_a (n_a + 1) / 2, with tied
    scores sharing their average rank (1-based)."""
    s = scores.double()
    order = s.argsort()
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.float64)
    for value in s.unique():  # ties: the average of the ranks they span
        tie = s == value
        ranks[tie] = ranks[tie].mean()
    n_a, n_n = int((labels == 1).sum()), int((labels == 0).sum())
    u = float(ranks[labels == 1].sum()) - n_a * (n_a + 1) / 2
    return 100 * u / (n_a * n_n)


def pgd_step(x: torch.Tensor, grad: torch.Tensor, x0: torch.Tensor, eps: float, alpha: float,
             sign: float) -> torch.Tensor:
    """01.2: move by alpha along sign * sign(grad) (+1 raises the score: an in-attack on normals), then project
    back on the L-inf ball of radius eps around the clean image x0 and on the pixel range [0, 1]."""
    x = x + sign * alpha * grad.sign()
    return torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0, 1)
