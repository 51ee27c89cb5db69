"""How an evaluation is shared out among ranks: the batches one process would run, a block per rank."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from torch.utils.data import DataLoader

from lifecycle import EvalShards, Trainer, TrainingArguments
from tests.support.helpers import Classifier, Examples


@pytest.mark.parametrize(
    ("size", "batch_size", "world_size"),
    [(n, b, w) for n, b, w in itertools.product((0, 1, 3, 11, 16, 17), (1, 4, 5), (1, 2, 3, 8))],
)
def test_the_ranks_kept_batches_are_one_process_batches_in_order(
    size: int, batch_size: int, world_size: int
) -> None:
    shards = [EvalShards(size, batch_size, rank=r, world_size=world_size) for r in range(world_size)]
    alone = list(EvalShards(size, batch_size, rank=0, world_size=1))
    kept = [batch for shard in shards for batch in list(shard)[: shard.real_batches]]
    assert kept == alone  # joined in rank order: every row once, in order, in the same batches
    assert [i for batch in alone for i in batch] == list(range(size))
    assert len({len(list(shard)) for shard in shards}) == 1  # every rank runs the model as often
    assert all(len(shard) == len(list(shard)) for shard in shards)


def test_a_loader_of_ones_own_over_eval_shards_evaluates_in_one_process_too(tmp_path: Path) -> None:
    data = Examples(11)
    loader = DataLoader(data, batch_sampler=EvalShards(len(data), 4, rank=0, world_size=1))
    args = TrainingArguments(str(tmp_path), per_device_eval_batch_size=4, report_to="none")
    trainer = Trainer(Classifier(), args, eval_dataset=data)
    expected = trainer.predict(data)
    trainer.get_test_dataloader = lambda dataset: loader  # type: ignore[method-assign]
    got = trainer.predict(data)
    assert got.predictions.tolist() == expected.predictions.tolist()
    assert got.metrics["test_loss"] == expected.metrics["test_loss"]
