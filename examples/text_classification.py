"""Fine-tune a small BERT to tell good reviews from bad ones, as transformers' run_glue.py does.

Nothing is downloaded: the reviews are generated, a WordPiece tokenizer is built from their words,
and the model is built from a ``BertConfig``. It runs in seconds on a CPU:

    python examples/text_classification.py --output_dir runs/classify

Stop it at any time (Ctrl-C, or kill it) once a checkpoint is written, and continue where it stopped:

    python examples/text_classification.py --output_dir runs/classify --resume_from_checkpoint

The script is a transformers script: replace the one lifecycle import below with transformers' and it
runs unchanged.
"""

import argparse
import json
import os
import random

import numpy as np
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DataCollatorWithPadding,
    PreTrainedTokenizerFast,
    set_seed,
)

# from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
from lifecycle import EarlyStoppingCallback, Trainer, TrainingArguments

SUBJECTS = ["the film", "this movie", "the plot", "the acting", "the ending", "the soundtrack", "the cast"]
GOOD = ["great", "wonderful", "moving", "clever", "superb", "charming", "gripping", "delightful"]
BAD = ["dull", "awful", "clumsy", "boring", "tedious", "shallow", "messy", "forgettable"]
FILLERS = ["really", "quite", "honestly", "at times", "overall", "i think", "frankly", "mostly"]
LABELS = ["negative", "positive"]


def review(rng):
    """A short review and its label (1: positive); after a "but", the second verdict counts."""
    label = rng.randrange(2)
    fillers = rng.sample(FILLERS, rng.randrange(2))
    words = [rng.choice(SUBJECTS), "was", *fillers, rng.choice(GOOD if label else BAD)]
    if rng.random() < 0.3:
        label = rng.randrange(2)
        words += ["but", rng.choice(SUBJECTS), "was", rng.choice(GOOD if label else BAD)]
    return " ".join(words), label


def build_tokenizer(texts):
    """A BERT-style WordPiece tokenizer over the words of ``texts``, wrapped for transformers.

    The vocabulary is the sorted words, so every process numbers them alike: a resumed run must see the
    same token ids as the run that wrote the checkpoint (a ``WordPieceTrainer`` may number them
    differently each time).
    """
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words = {
        word for text in texts for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
    }
    vocab = {
        token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(words)])
    }
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_train_epochs", type=float, default=6)
    parser.add_argument("--per_device_train_batch_size", type=int, default=16)
    parser.add_argument("--per_device_eval_batch_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--max_train_samples", type=int, default=240)
    parser.add_argument("--early_stopping_patience", type=int, default=2)
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
    train_rows = [review(rng) for _ in range(cli.max_train_samples)]
    eval_rows = [review(rng) for _ in range(120)]
    test_rows = [review(rng) for _ in range(40)]

    tokenizer = build_tokenizer(text for text, _ in train_rows)

    def tokenize(rows):
        return [{**tokenizer(text, truncation=True, max_length=32), "label": label} for text, label in rows]

    train_dataset, eval_dataset = tokenize(train_rows), tokenize(eval_rows)
    test_dataset = [tokenizer(text) for text, _ in test_rows]

    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)},
        pad_token_id=tokenizer.pad_token_id,
    )
    model = BertForSequenceClassification(config)

    def compute_metrics(prediction):
        predicted = np.argmax(prediction.predictions, axis=-1)
        return {"accuracy": float((predicted == prediction.label_ids).mean())}

    args = TrainingArguments(
        output_dir=cli.output_dir,
        num_train_epochs=cli.num_train_epochs,
        per_device_train_batch_size=cli.per_device_train_batch_size,
        per_device_eval_batch_size=cli.per_device_eval_batch_size,
        learning_rate=cli.learning_rate,
        seed=cli.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_steps=10,
        load_best_model_at_end=True,
        metric_for_best_model="loss",
        restore_callback_states_from_checkpoint=True,  # early stopping's patience survives a resume
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=cli.early_stopping_patience)],
    )

    train_result = trainer.train(resume_from_checkpoint=cli.resume_from_checkpoint)
    trainer.save_model()  # the best model and the tokenizer, for from_pretrained
    trainer.state.save_to_json(os.path.join(cli.output_dir, "trainer_state.json"))

    results = dict(train_result.metrics)
    results.update(trainer.evaluate())

    predicted = np.argmax(trainer.predict(test_dataset).predictions, axis=-1)
    labels = np.array([label for _, label in test_rows])
    results["test_accuracy"] = float((predicted == labels).mean())
    with open(os.path.join(cli.output_dir, "predict_results.txt"), "w") as f:
        f.write("index\ttext\tprediction\n")
        for i, (text, _) in enumerate(test_rows):
            f.write(f"{i}\t{text}\t{LABELS[predicted[i]]}\n")

    with open(os.path.join(cli.output_dir, "all_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    for key, value in sorted(results.items()):
        print(f"  {key} = {value}")


if __name__ == "__main__":
    main()
