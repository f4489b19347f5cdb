"""Solutions of notebook 04's self-checking exercises."""
import torch
import torch.nn.functional as F


def cosine_matrix(z: torch.Tensor) -> torch.Tensor:
    """04.1: unit rows, then all dot products."""
    u = z / z.norm(dim=1, keepdim=True)
    return u @ u.T


def opposite_term(z: torch.Tensor, V: int, K: int, margin: float = 0.0, t: float = 0.1) -> torch.Tensor:
    """04.2: within each view v and image i, the normal (k=0) against each of its K-1 pseudo-anomalies: the mean of
    t * softplus((cos - margin) / t) over the V*(K-1)*N pairs."""
    u = F.normalize(z, dim=1).reshape(V, K, -1, z.shape[1])  # (V, K, N, d)
    cos = (u[:, :1] * u[:, 1:]).sum(-1)  # (V, K-1, N)
    return (t * F.softplus((cos - margin) / t)).mean()
