"""The default optimizer (AdamW, no decay on biases and norms) and learning-rate schedules."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lifecycle.args import TrainingArguments

__all__ = ["default_optimizer", "default_scheduler"]


def default_optimizer(model: torch.nn.Module, args: TrainingArguments) -> torch.optim.Optimizer:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        [g for g in groups if g["params"]],
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )


def warmup_steps(args: TrainingArguments, max_steps: int) -> int:
    """``warmup_steps`` below 1 is a fraction of ``max_steps``."""
    w = args.warmup_steps
    return math.ceil(w * max_steps) if 0 < w < 1 else int(w)


def default_scheduler(
    optimizer: torch.optim.Optimizer, args: TrainingArguments, max_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = warmup_steps(args, max_steps)
    kind = args.lr_scheduler_type

    def factor(step: int) -> float:
        if kind != "constant" and step < warmup:
            return step / max(1, warmup)
        if kind in ("constant", "constant_with_warmup"):
            return 1.0
        progress = (step - warmup) / max(1, max_steps - warmup)
        if kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
        return max(0.0, 1.0 - progress)

    schedule: Callable[[int], float] = factor
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
