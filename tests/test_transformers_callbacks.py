"""transformers' own callbacks and callback protocol, run inside our Trainer and compared with
transformers' Trainer on the same configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lifecycle
from lifecycle import LifecycleError, on
from tests.support.helpers import Classifier, Examples
from tests.support.parity import ScriptedMetric

transformers = pytest.importorskip("transformers")

# a metric that improves, then stalls: patience 2 stops the run at the 5th evaluation
SCRIPT = [0.5, 0.6, 0.7, 0.7, 0.65, 0.9, 0.95, 0.99]


def _arguments(library: Any, out: Path, **extra: Any) -> Any:
    return library.TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=4,
        num_train_epochs=8,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        logging_steps=2,
        metric_for_best_model="score",
        disable_tqdm=True,
        **extra,
    )


def _ours(out: Path, callbacks: list[Any], metric: ScriptedMetric) -> lifecycle.Trainer:
    return lifecycle.Trainer(
        Classifier(),
        _arguments(lifecycle, out),
        train_dataset=Examples(16),
        eval_dataset=Examples(8, seed=1),
        compute_metrics=metric,
        callbacks=callbacks,
    )


def test_transformers_early_stopping_keeps_its_patience_across_a_resume(tmp_path: Path) -> None:
    whole = _ours(tmp_path / "whole", [transformers.EarlyStoppingCallback(2)], ScriptedMetric(SCRIPT))
    whole.train()
    stopped_at = whole.state.global_step
    assert stopped_at < whole.state.max_steps  # it did stop early

    # resume from the checkpoint after the 4th evaluation: the counter stands at 1 there
    checkpoint = tmp_path / "whole" / "checkpoint-8"
    saved = lifecycle.TrainerState.load_from_json(checkpoint / "trainer_state.json").stateful_callbacks
    assert saved["EarlyStoppingCallback"][0]["attributes"] == {"early_stopping_patience_counter": 1}
    fresh = transformers.EarlyStoppingCallback(2)
    resumed = _ours(tmp_path / "whole", [fresh], ScriptedMetric(SCRIPT[4:]))
    resumed.train(resume_from_checkpoint=checkpoint)
    assert resumed.state.global_step == stopped_at
    assert fresh.early_stopping_patience_counter == 2
    assert _untimed(resumed.state.log_history) == _untimed(whole.state.log_history)


def _untimed(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if not k.endswith(("_runtime", "_per_second"))} for e in history]


class _Keys:
    """Records the keyword arguments and metric names each evaluate event receives."""

    def __init__(self) -> None:
        self.seen: list[tuple[list[str], list[str]]] = []

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.seen.append((sorted(kwargs), sorted(kwargs["metrics"])))


def test_evaluate_callbacks_receive_what_transformers_passes(tmp_path: Path) -> None:
    seen = {}
    for name, library, extra in (
        ("hf", transformers, {"report_to": "none", "use_cpu": True}),
        ("ours", lifecycle, {}),
    ):
        keys = type("Keys", (_Keys, library.TrainerCallback), {})()
        trainer = library.Trainer(
            model=Classifier(),
            args=_arguments(library, tmp_path / name, **extra),
            train_dataset=Examples(16),
            eval_dataset=Examples(8, seed=1),
            compute_metrics=ScriptedMetric(SCRIPT),
            callbacks=[keys],
        )
        trainer.train()
        after = trainer.evaluate()
        seen[name] = (keys.seen, sorted(after))
    assert seen["ours"] == seen["hf"]
    assert "epoch" in seen["ours"][0][0][1]


def test_a_misspelt_transition_is_refused_with_the_closest_name(tmp_path: Path) -> None:
    class Typo(lifecycle.TrainerCallback):
        def on_evalute(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...

    class NativeTypo(lifecycle.TrainerCallback):
        @on("step_ends", every=2)
        def report(self, event: Any) -> None: ...

    with pytest.raises(LifecycleError, match=r"callback Typo: method on_evalute .* did you mean 'evaluate'"):
        _ours(tmp_path, [Typo()], ScriptedMetric(SCRIPT))
    trainer = _ours(tmp_path, [], ScriptedMetric(SCRIPT))
    with pytest.raises(LifecycleError, match=r"@on\('step_ends'\) on report .* did you mean 'step_end'"):
        trainer.add_callback(NativeTypo())
    assert not any(isinstance(cb, NativeTypo) for cb in trainer.callbacks)
