"""The optimizer and learning-rate schedule the arguments name (``optim``, ``lr_scheduler_type``).

Weight decay follows transformers: every trainable parameter decays except those inside a
``torch.nn.LayerNorm`` and those whose name contains ``bias``, ``layernorm``, ``rmsnorm``, ``norm`` as a
whole part of the dotted name, or ends a part with ``_norm``. A schedule that steps on the evaluation
metric (``reduce_lr_on_plateau``, ``greedy``) is stepped by the trainer after each evaluation.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from lifecycle.args import ArgumentError, TrainingArguments
from lifecycle.greedy import GreedyLR
from lifecycle.optimizers import OPTIMIZERS, optimizer_options
from lifecycle.schedules import SCHEDULES

__all__ = [
    "create_optimizer",
    "create_scheduler",
    "decay_parameter_names",
    "steps_on_metric",
]

_NO_DECAY = re.compile(r"bias|layernorm|rmsnorm|(?:^|\.)norm(?:$|\.)|_norm(?:$|\.)")


def decay_parameter_names(model: torch.nn.Module) -> set[str]:
    """Names of the parameters weight decay applies to (the module docstring says which do not)."""
    norms = [f"{name}." for name, m in model.named_modules() if name and isinstance(m, torch.nn.LayerNorm)]
    return {
        name
        for name, _ in model.named_parameters()
        if not _NO_DECAY.search(name.lower()) and not name.startswith(tuple(norms))
    }


def create_optimizer(model: torch.nn.Module, args: TrainingArguments) -> torch.optim.Optimizer:
    """``args.optim`` over the model's trainable parameters, in two groups: with and without decay."""
    spec = OPTIMIZERS[args.optim]
    cls = getattr(torch.optim, spec.torch_name, None)
    if cls is None:
        raise ArgumentError(
            f"TrainingArguments.optim={args.optim!r} needs torch.optim.{spec.torch_name} "
            f"(torch >= 2.5); this torch is {torch.__version__}"
        )
    kwargs: dict[str, Any] = {"lr": args.learning_rate, **spec.fixed}
    if spec.adam:
        kwargs.update(betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon)
    kwargs.update(optimizer_options(args.optim, args.optim_args))
    decay = decay_parameter_names(model)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if n in decay], "weight_decay": args.weight_decay},
        {"params": [p for n, p in trainable if n not in decay], "weight_decay": 0.0},
    ]
    optimizer: torch.optim.Optimizer = cls([g for g in groups if g["params"]], **kwargs)
    return optimizer


def create_scheduler(optimizer: torch.optim.Optimizer, args: TrainingArguments, max_steps: int) -> Any:
    """``args.lr_scheduler_type`` for a run of ``max_steps`` optimizer steps, with its warmup and
    ``lr_scheduler_kwargs``."""
    name, options = args.lr_scheduler_type, dict(args.lr_scheduler_kwargs or {})
    if name == "reduce_lr_on_plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
    if name == "greedy":
        return GreedyLR(optimizer, **options)
    curve = SCHEDULES[name].curve
    assert curve is not None
    factor = curve(args.get_warmup_steps(max_steps), max_steps, optimizer.defaults["lr"], **options)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_on_metric(scheduler: Any) -> bool:
    """The scheduler steps on the evaluation metric (``step(metric)``), not after every optimizer step."""
    return isinstance(scheduler, (torch.optim.lr_scheduler.ReduceLROnPlateau, GreedyLR))
