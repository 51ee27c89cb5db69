"""Tiny transformers models built from their configs (nothing downloaded), token data of uneven lengths
and the per-batch padding collators people write for them."""

from __future__ import annotations

from typing import Any

import torch

VOCAB = 100
LENGTHS = (5, 9, 3, 11, 4, 7, 6)
"""Sequence lengths: in batches of three the widths are 9, 11 and 6, so padding to the longest matters."""


def tiny_bert(seed: int = 0, head: str = "SequenceClassification", **config: Any) -> torch.nn.Module:
    """``BertFor<head>``: ``SequenceClassification`` (3 labels), ``QuestionAnswering`` (2: start, end)."""
    import transformers

    torch.manual_seed(seed)
    settings = {"num_labels": 2 if head == "QuestionAnswering" else 3, **config}
    bert_config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        **settings,
    )
    model: torch.nn.Module = getattr(transformers, f"BertFor{head}")(bert_config)
    return model


def tiny_gpt2(seed: int = 0) -> torch.nn.Module:
    """A causal LM, ``GPT2LMHeadModel``."""
    import transformers

    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=2, vocab_size=VOCAB, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    model: torch.nn.Module = transformers.GPT2LMHeadModel(config)
    return model


def token_rows(lengths: tuple[int, ...] = LENGTHS, seed: int = 1) -> Any:
    """Rows of ``input_ids`` (tokens 1..VOCAB-1) with a class ``label`` and a span, ``start_positions`` and
    ``end_positions`` (names transformers keeps when it drops the columns a model does not take)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i, n in enumerate(lengths):
        ids = torch.randint(1, VOCAB, (n,), generator=g)
        start = int(torch.randint(0, n, (1,), generator=g))
        rows.append(
            {
                "input_ids": ids,
                "label": i % 3,
                "start_positions": start,
                "end_positions": min(start + 2, n - 1),
            }
        )
    return rows


def _pad(rows: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row["input_ids"])] = row["input_ids"]
        mask[i, : len(row["input_ids"])] = 1
    return ids, mask


def pad_classification(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Padded to the batch's longest sequence; ``labels`` are the classes."""
    ids, mask = _pad(rows)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r["label"] for r in rows])}


def pad_spans(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Padded; the labels of extractive question answering, ``start_positions`` and ``end_positions``."""
    ids, mask = _pad(rows)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "start_positions": torch.tensor([r["start_positions"] for r in rows]),
        "end_positions": torch.tensor([r["end_positions"] for r in rows]),
    }


def pad_causal_lm(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Padded; ``labels`` are the tokens themselves, -100 on the padding."""
    ids, mask = _pad(rows)
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}
