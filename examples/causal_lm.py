"""Train a small GPT-2 on generated sentences and report its perplexity, as transformers' run_clm.py does.

Nothing is downloaded: the corpus comes from a tiny grammar, the byte-level BPE tokenizer is trained on it
in memory, and the model is built from a ``GPT2Config``. It runs in seconds on a CPU:

    python examples/causal_lm.py --output_dir runs/clm

Continue a stopped run from its newest checkpoint:

    python examples/causal_lm.py --output_dir runs/clm --resume_from_checkpoint

The script is a transformers script: replace the one lifecycle import below with transformers' and it
runs unchanged.
"""

import argparse
import json
import math
import os
import random

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    DataCollatorForLanguageModeling,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    set_seed,
)

# from transformers import Trainer, TrainingArguments
from lifecycle import Trainer, TrainingArguments

NAMES = ["the cat", "a dog", "my neighbour", "the old sailor", "a small bird", "the teacher"]
VERBS = ["sees", "follows", "paints", "remembers", "chases", "greets"]
PLACES = ["in the garden", "by the river", "at the market", "under the bridge", "on the hill"]


def sentence(rng):
    """Subject, verb, object and sometimes a place: enough structure for a model to learn."""
    words = [rng.choice(NAMES), rng.choice(VERBS), rng.choice(NAMES)]
    if rng.random() < 0.5:
        words.append(rng.choice(PLACES))
    return " ".join(words) + "."


def build_tokenizer(texts):
    """A GPT-2-style byte-level BPE tokenizer trained on ``texts``, wrapped for transformers."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>"
    )


def group_texts(token_ids, block_size):
    """One stream of tokens cut into blocks of ``block_size`` (the remainder is dropped), as run_clm.py."""
    usable = len(token_ids) // block_size * block_size
    return [{"input_ids": token_ids[i : i + block_size]} for i in range(0, usable, block_size)]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_train_epochs", type=float, default=3)
    parser.add_argument("--per_device_train_batch_size", type=int, default=8)
    parser.add_argument("--per_device_eval_batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--block_size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--resume_from_checkpoint",
        nargs="?",
        const=True,
        default=None,
        help="a checkpoint folder; without one, the newest checkpoint in output_dir",
    )
    return parser.parse_args()


def main():
    cli = parse_args()
    set_seed(cli.seed)

    rng = random.Random(cli.seed)
    train_texts = [sentence(rng) for _ in range(600)]
    eval_texts = [sentence(rng) for _ in range(100)]
    tokenizer = build_tokenizer(train_texts)

    def blocks(texts):
        stream = []
        for text in texts:
            stream += tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
        return group_texts(stream, cli.block_size)

    train_dataset, eval_dataset = blocks(train_texts), blocks(eval_texts)

    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=cli.block_size,
        n_embd=48,
        n_layer=2,
        n_head=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = GPT2LMHeadModel(config)

    args = TrainingArguments(
        output_dir=cli.output_dir,
        num_train_epochs=cli.num_train_epochs,
        per_device_train_batch_size=cli.per_device_train_batch_size,
        per_device_eval_batch_size=cli.per_device_eval_batch_size,
        learning_rate=cli.learning_rate,
        warmup_steps=10,
        seed=cli.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        logging_steps=10,
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )

    train_result = trainer.train(resume_from_checkpoint=cli.resume_from_checkpoint)
    trainer.save_model()
    trainer.state.save_to_json(os.path.join(cli.output_dir, "trainer_state.json"))

    results = dict(train_result.metrics)
    metrics = trainer.evaluate()
    metrics["perplexity"] = math.exp(metrics["eval_loss"])
    results.update(metrics)

    with open(os.path.join(cli.output_dir, "all_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    for key, value in sorted(results.items()):
        print(f"  {key} = {value}")


if __name__ == "__main__":
    main()
