"""Rows of token ids into padded micro-batches that fit the device's memory."""

from __future__ import annotations

from collections.abc import Sequence
from time import perf_counter

import torch

from envs.errors import InputError


def micro_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Indices sorted by length, cut so that rows x longest row <= budget (one row at least)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[i] <= budget:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def within_memory(
    parts: Sequence[Sequence[int]], compute, device: torch.device, too_large
) -> tuple[list[tuple[Sequence[int], object, float]], list[Sequence[int]]]:
    """(part, compute(part), seconds) for each part of row indices, in order, and the halves
    made on the way: a part the device has no memory for is split in two until it fits.

    compute must leave nothing behind when it fails; a single row that does not fit is an
    InputError with the message too_large(row).
    """
    done, halves, pending = [], [], list(parts)
    while pending:
        part = pending.pop(0)
        tic = perf_counter()
        try:
            done.append((part, compute(part), perf_counter() - tic))
        except torch.OutOfMemoryError:
            if len(part) == 1:
                raise InputError(too_large(part[0])) from None
            if device.type == "cuda":
                torch.cuda.empty_cache()
            middle = len(part) // 2
            pending[:0] = [part[:middle], part[middle:]]
            halves += pending[:2]
    return done, halves


def left_padded(rows: Sequence[Sequence[int]], pad: int, device: torch.device):
    """input_ids, attention_mask and position_ids of rows padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    lengths = torch.tensor([len(r) for r in rows])
    mask = (torch.arange(width) >= width - lengths[:, None]).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def right_padded(rows: Sequence[Sequence[int]], pad: int, device: torch.device):
    """input_ids and attention_mask of rows padded on the right (width at least 1)."""
    width = max(1, max(len(r) for r in rows))
    ids = torch.tensor([list(r) + [pad] * (width - len(r)) for r in rows], dtype=torch.long)
    lengths = torch.tensor([len(r) for r in rows])
    mask = (torch.arange(width) < lengths[:, None]).long()
    return ids.to(device), mask.to(device)
