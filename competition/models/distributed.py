"""Multi-process training under torchrun (DistributedDataParallel; gloo on CPU, NCCL on CUDA): each
process trains on its shard of every batch and only rank 0 writes (docs/SCALE_OUT.md, "Multi-GPU
training of one model"). Outside torchrun nothing here does anything."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def init_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); True when distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return True


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


def local_device() -> torch.device | None:
    """This rank's GPU under torchrun on CUDA, else None (the trainer's default)."""
    if world()[1] > 1 and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return None


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
