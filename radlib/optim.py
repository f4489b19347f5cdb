"""Optimisers and learning-rate schedules for contrastive training.

``LARS`` follows the CSI/COBRA official code (torchlars-style LARS wrapped around SGD): each weight tensor's step
is scaled by the trust ratio ``eta * ||w|| / (||g|| + wd * ||w||)``; biases and BatchNorm parameters are excluded
from both the trust ratio and weight decay (as SimCLR / CSI do).
"""
from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

__all__ = ["LARS", "build_optimizer", "warmup_cosine"]


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling.

    Args:
        params: parameter groups; a group with ``lars=False`` (biases, BN) gets plain SGD without weight decay.
        lr: base learning rate; momentum, weight_decay as SGD; eta: trust coefficient (0.001 as torchlars).
    """

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 eta: float = 0.001) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads: list[torch.Tensor] | tuple[torch.Tensor, ...] = [p.grad for p in params]
            if group["lars"]:
                wd = group["weight_decay"]
                if wd:
                    grads = torch._foreach_add(grads, params, alpha=wd)
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                    torch.ones_like(w_norm))
                grads = torch._foreach_mul(grads, list(trust.unbind()))
            bufs = []
            for p, g in zip(params, grads):
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                bufs.append(state["momentum_buffer"])
            torch._foreach_add_(params, bufs, alpha=-group["lr"])
        return loss


def _split_decay(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return decay, no_decay


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float = 1e-6,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """``"lars"`` (paper), ``"sgd"`` (official fallback) or ``"adam"`` (AdamW); biases/BN never decayed."""
    decay, no_decay = _split_decay(model)
    if name == "lars":
        # the official code scales LARS' base lr by its trust ratio; eta=0.001 needs the warm-up peak lr ~1
        return LARS([{"params": decay}, {"params": no_decay, "lars": False, "weight_decay": 0.0}],
                    lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD([{"params": decay, "weight_decay": weight_decay},
                                {"params": no_decay, "weight_decay": 0.0}], lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose lars, sgd or adam")


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, start_factor: float = 0.1,
                  final_factor: float = 0.0) -> float:
    """LR multiplier at ``step``: linear ``start_factor -> 1`` over ``warmup_steps``, then cosine to ``final_factor``."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    if step < warmup_steps:
        return start_factor + (1.0 - start_factor) * step / max(1, warmup_steps)
    t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
