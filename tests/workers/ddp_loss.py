"""Run by tests/test_train.py under `torchrun --nproc_per_node 2`: each process embeds its half of a
batch with a DDP-wrapped linear encoder, computes InfoNCE with cross-device negatives and
backpropagates; rank 0 writes the loss and the (DDP-averaged) gradient for comparison with one
process on the whole batch."""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from evalharness.train.loss import info_nce


def data(group: int = 3):
    g = torch.Generator().manual_seed(0)
    queries, passages = torch.randn(4, 6, generator=g), torch.randn(4 * group, 6, generator=g)
    return queries, passages


def encoder() -> torch.nn.Linear:
    torch.manual_seed(1)
    return torch.nn.Linear(6, 5, bias=False)


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    queries, passages = data()
    nq, npass = len(queries) // world, len(passages) // world
    model = DistributedDataParallel(encoder())
    q = model(queries[rank * nq : (rank + 1) * nq])
    p = model(passages[rank * npass : (rank + 1) * npass])
    loss = info_nce(q, p, temperature=0.05, in_batch=True, cross_device=True)
    loss.backward()
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"loss": loss.item(), "grad": model.module.weight.grad.tolist(), "world": world}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
