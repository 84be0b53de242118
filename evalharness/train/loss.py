"""InfoNCE on cosine similarities (temperature 0.02), with hard negatives and, for retrieval batches,
in-batch and cross-device negatives.

Passages are laid out group by group: query i's positive is passage i*G, its hard negatives the next
G-1. With in-batch negatives every query is scored against every passage of the batch (of every
device, gathered with gradients through `torch.distributed.nn.functional.all_gather`); without them
only against its own group (the paper's choice for classification and clustering).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gather(t: torch.Tensor) -> torch.Tensor:
    """All devices' rows in rank order, with gradients."""
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_gather

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    return torch.cat(all_gather(t), dim=0)


def info_nce(
    q: torch.Tensor,
    p: torch.Tensor,
    *,
    temperature: float = 0.02,
    in_batch: bool = True,
    cross_device: bool = False,
) -> torch.Tensor:
    """Mean cross-entropy of each query's positive against its negatives. `q`: [B, d]; `p`: [B*G, d]."""
    q = F.normalize(q.float(), dim=-1)
    p = F.normalize(p.float(), dim=-1)
    group = p.shape[0] // q.shape[0]
    if not in_batch:
        scores = torch.einsum("bd,bgd->bg", q, p.view(q.shape[0], group, -1)) / temperature
        return F.cross_entropy(scores, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
    if cross_device:
        # every device computes the loss of the gathered batch; all_gather's backward sums the copies'
        # gradients into each device's own rows and DDP averages over devices, so the parameters get
        # exactly the gradient of one process holding the concatenated batch
        q, p = _gather(q), _gather(p)
    scores = q @ p.T / temperature
    targets = torch.arange(q.shape[0], device=q.device) * group
    return F.cross_entropy(scores, targets)
