"""Solutions of notebook 10's self-checking exercises."""
import torch


def precision_recall(dropped: torch.Tensor, contaminated: torch.Tensor) -> tuple[float, float]:
    """10.1: the dropped images as a detector of the injected anomalies: precision = injected among the dropped,
    recall = dropped among the injected (percent; 0 when the set is empty)."""
    hit = int(contaminated[dropped].sum())
    precision = 100 * hit / len(dropped) if len(dropped) else 0.0
    recall = 100 * hit / int(contaminated.sum()) if int(contaminated.sum()) else 0.0
    return precision, recall


def keep_lowest(scores: torch.Tensor, keep: float) -> torch.Tensor:
    """10.2: keep the int(keep * N) (at least 1) lowest-scoring images, as sorted indices."""
    n_keep = max(1, int(keep * len(scores) + 1e-9))
    return scores.argsort()[:n_keep].sort().values
