"""Solutions of notebook 02's self-checking exercises."""
import torch


def chunk_labels(n_images: int, K: int) -> torch.Tensor:
    """02.1: Policy.expand is chunk-major: rows k*N .. k*N + N - 1 are transform k of the N images."""
    return torch.arange(K).repeat_interleave(n_images)


def rotate_each(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """02.2: quarter turns counter-clockwise in the (H, W) plane, one count per image, taken mod 4."""
    return torch.stack([torch.rot90(img, int(turns) % 4, dims=(1, 2)) for img, turns in zip(x, k)])
