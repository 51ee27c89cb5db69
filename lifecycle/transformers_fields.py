"""transformers' ``TrainingArguments`` field names, and why each one this library lacks is not supported.

A script written for transformers may pass any of them: one we do not support is an error that names
it and says why (never silently ignored); a name neither library knows is an error with the closest
name we have. The list is transformers 5's; a test compares it with the installed transformers.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable

from lifecycle.argcheck import ArgumentError

__all__ = ["TRANSFORMERS_FIELDS", "UNSUPPORTED", "check_names"]

#: every init field of ``transformers.TrainingArguments``, in its order
TRANSFORMERS_FIELDS = (
    *("output_dir", "per_device_train_batch_size", "num_train_epochs", "max_steps", "learning_rate"),
    *("lr_scheduler_type", "lr_scheduler_kwargs", "warmup_steps", "optim", "optim_args", "weight_decay"),
    *("adam_beta1", "adam_beta2", "adam_epsilon", "optim_target_modules", "gradient_accumulation_steps"),
    *("average_tokens_across_devices", "max_grad_norm", "label_smoothing_factor", "bf16", "fp16"),
    *("bf16_full_eval", "fp16_full_eval", "tf32", "activation_checkpointing"),
    *("activation_checkpointing_kwargs", "gradient_checkpointing", "gradient_checkpointing_kwargs"),
    *("torch_compile", "torch_compile_backend", "torch_compile_mode", "use_liger_kernel"),
    *("liger_kernel_config", "use_cache", "neftune_noise_alpha", "torch_empty_cache_steps"),
    *("auto_find_batch_size", "logging_strategy", "logging_steps", "logging_first_step", "log_on_each_node"),
    *("logging_nan_inf_filter", "include_num_input_tokens_seen", "log_level", "log_level_replica"),
    *("disable_tqdm", "report_to", "run_name", "project", "trackio_space_id", "trackio_bucket_id"),
    *("trackio_static_space_id", "eval_strategy", "eval_steps", "eval_delay", "per_device_eval_batch_size"),
    *("prediction_loss_only", "eval_on_start", "eval_do_concat_batches", "eval_use_gather_object"),
    *("eval_accumulation_steps", "include_for_metrics", "batch_eval_metrics", "save_only_model"),
    *("save_strategy", "save_steps", "save_on_each_node", "save_total_limit", "enable_jit_checkpoint"),
    *("push_to_hub", "hub_token", "hub_private_repo", "hub_model_id", "hub_strategy", "hub_always_push"),
    *("hub_revision", "load_best_model_at_end", "metric_for_best_model", "greater_is_better"),
    *("ignore_data_skip", "restore_callback_states_from_checkpoint", "full_determinism", "seed"),
    *("data_seed", "use_cpu", "accelerator_config", "parallelism_config", "dataloader_drop_last"),
    *("dataloader_num_workers", "dataloader_pin_memory", "dataloader_persistent_workers"),
    *("dataloader_prefetch_factor", "dataloader_multiprocessing_context", "dataloader_in_order"),
    *("remove_unused_columns", "label_names", "train_sampling_strategy", "length_column_name"),
    *("ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "ddp_static_graph"),
    *("ddp_backend", "ddp_timeout", "fsdp", "fsdp_config", "deepspeed", "debug", "skip_memory_metrics"),
    *("do_train", "do_eval", "do_predict", "resume_from_checkpoint", "local_rank"),
)

_REASONS: dict[str, tuple[str, ...]] = {
    "several processes train with DDP or FSDP2 (fsdp, fsdp_config) under torchrun; DeepSpeed and "
    "Accelerate's configurations are not integrated": (
        "deepspeed",
        "parallelism_config",
        "accelerator_config",
    ),
    "DDP runs with PyTorch's defaults (gloo on the CPU, nccl on CUDA) and takes the rank from torchrun's "
    "environment": (
        *("ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers", "ddp_static_graph"),
        *("ddp_backend", "ddp_timeout", "local_rank"),
    ),
    "set torch.backends.cuda.matmul.allow_tf32 yourself": ("tf32",),
    "evaluation runs under the same autocast as training; the model is not cast": (
        "bf16_full_eval",
        "fp16_full_eval",
    ),
    "the model is trained as given: patch or configure it before passing it to the Trainer": (
        "use_liger_kernel",
        "liger_kernel_config",
        "neftune_noise_alpha",
        "use_cache",
    ),
    "it serves GaLore and APOLLO optimizers, which are not available here": ("optim_target_modules",),
    "the loss is each micro-batch's own mean, averaged over the window and over the ranks": (
        "average_tokens_across_devices",
    ),
    "the trainer does not manage or measure device memory": (
        "torch_empty_cache_steps",
        "auto_find_batch_size",
        "skip_memory_metrics",
    ),
    "there are no debug modes": ("debug",),
    "set levels with Python's logging module; rank 0 alone writes": (
        "log_on_each_node",
        "log_level",
        "log_level_replica",
    ),
    "input tokens are not counted": ("include_num_input_tokens_seen",),
    "a tracker takes its settings when you create it: report_to=[SomeTracker(...)]": (
        *("project", "trackio_space_id", "trackio_bucket_id", "trackio_static_space_id"),
    ),
    "evaluation collects each batch's loss, and logits and labels when compute_metrics is given (or in "
    "predict()), on the CPU, and computes metrics once at the end": (
        *("eval_do_concat_batches", "eval_use_gather_object", "batch_eval_metrics"),
    ),
    "a checkpoint holds all a run needs to resume exactly, written by rank 0 when a save is due": (
        "save_only_model",
        "save_on_each_node",
        "enable_jit_checkpoint",
    ),
    "nothing is pushed to the Hugging Face Hub; push the saved model yourself": (
        *("hub_token", "hub_private_repo", "hub_model_id", "hub_strategy"),
        *("hub_always_push", "hub_revision"),
    ),
    "a resumed run always continues at the exact batch, without loading the ones it skips": (
        "ignore_data_skip",
    ),
    "call torch.use_deterministic_algorithms(True) yourself; seed and data_seed fix the random state": (
        "full_determinism",
    ),
    "override Trainer.get_train_dataloader() to build a loader with these settings": (
        *("dataloader_persistent_workers", "dataloader_prefetch_factor"),
        *("dataloader_multiprocessing_context", "dataloader_in_order"),
    ),
    "batches reach the model as the collator makes them: no column is removed": ("remove_unused_columns",),
    "each epoch is shuffled by lifecycle.EpochSampler; override Trainer.get_train_dataloader() for another "
    "order": ("train_sampling_strategy", "length_column_name"),
    "call train(resume_from_checkpoint=...) itself": ("resume_from_checkpoint",),
}

#: why each transformers field is not supported, by name
UNSUPPORTED: dict[str, str] = {name: reason for reason, names in _REASONS.items() for name in names}


def check_names(given: Iterable[str], ours: Collection[str]) -> None:
    """Every name in ``given`` is one of ``ours``; else an :class:`ArgumentError` naming the first that is
    not: transformers' (and why it is not supported here) or unknown (and the closest of ours)."""
    for name in given:
        if name in ours:
            continue
        if name in TRANSFORMERS_FIELDS:
            reason = UNSUPPORTED.get(name, "no equivalent yet")
            raise ArgumentError(f"TrainingArguments: transformers' `{name}` is not supported here ({reason})")
        close = difflib.get_close_matches(name, list(ours), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ArgumentError(f"TrainingArguments: unknown argument {name!r}{hint}")
