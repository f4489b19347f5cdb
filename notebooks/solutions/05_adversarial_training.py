"""Solutions of notebook 05's self-checking exercises."""
import math

import torch


def random_start(x: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """05.1: delta uniform on [-eps, eps] per pixel (drawn from the generator), then clipped to the pixel range."""
    delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps
    return (x + delta).clamp(0, 1)


def lr_factor(step: int, total: int, warmup: int) -> float:
    """05.2: linear from 0.1 to 1 over the warm-up steps, then a half cosine from 1 to 0 over the rest."""
    if step < warmup:
        return 0.1 + 0.9 * step / max(1, warmup)
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1 + math.cos(math.pi * t))
