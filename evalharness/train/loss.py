"""InfoNCE on cosine similarities (temperature 0.02), with hard negatives and, for retrieval batches,
in-batch and cross-device negatives.

Passages are laid out group by group: query i's positive is passage i*G, its hard negatives the next
G-1. With in-batch negatives every query is scored against every passage of the batch (of every
device, gathered with gradients through `torch.distributed.nn.functional.all_gather`); without them
only against its own group (the paper's choice for classification and clustering).

Knowledge distillation (FlagEmbedding's `kl_div`): with teacher scores for each query's own group,
the loss adds the cross-entropy of the student's group distribution against softmax(teacher scores),
`-mean(sum(softmax(t) * log_softmax(s / temperature)))`, to the contrastive term.
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
    teacher_scores: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of each query's positive against its negatives (plus the distillation term
    when `teacher_scores` [B, G] are given). `q`: [B, d]; `p`: [B*G, d]."""
    q = F.normalize(q.float(), dim=-1)
    p = F.normalize(p.float(), dim=-1)
    group = p.shape[0] // q.shape[0]
    if in_batch and cross_device:
        # every device computes the loss of the gathered batch; all_gather's backward sums the copies'
        # gradients into each device's own rows and DDP averages over devices, so the parameters get
        # exactly the gradient of one process holding the concatenated batch
        q, p = _gather(q), _gather(p)
        teacher_scores = _gather(teacher_scores) if teacher_scores is not None else None
    own = torch.einsum("bd,bgd->bg", q, p.view(q.shape[0], group, -1)) / temperature  # [B, G]
    if in_batch:
        scores = q @ p.T / temperature
        loss = F.cross_entropy(scores, torch.arange(q.shape[0], device=q.device) * group)
    else:
        loss = F.cross_entropy(own, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))
    if teacher_scores is not None:
        targets = F.softmax(teacher_scores.float().to(own.device), dim=-1)
        loss = loss - (targets * F.log_softmax(own, dim=-1)).sum(dim=-1).mean()
    return loss
