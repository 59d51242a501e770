"""Train the organism's OLMo-2 from scratch on the world's documents, deterministically.

A fixed number of AdamW steps (linear warmup, cosine decay ending exactly at the last step, so the final
points come from the decay), bf16 autocast on CPU, documents packed into rows: each document is followed
by the eos token, never crosses a row, and attends only to itself (position ids restart at every
document, which HF's mask builder turns into a block-diagonal causal mask). The same config, seed and
thread count give the same weights.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import WorkbenchError
from .config import ModelConfig, OrganismConfig

log = logging.getLogger(__name__)


@dataclass
class TrainStats:
    """What the training run did."""

    steps: int
    tokens: int
    """Real (non-padding) tokens processed."""
    seconds: float
    tokens_per_second: float
    final_loss: float
    """Mean loss over the last 5% of steps."""


def olmo2_config(cfg: ModelConfig, tokenizer):
    """The ``Olmo2Config`` of ``cfg`` with the tokenizer's special token ids."""
    from ..training.olmo2 import olmo2_config as factory

    return factory(
        vocab_size=cfg.vocab_size,
        hidden=cfg.hidden,
        layers=cfg.layers,
        heads=cfg.heads,
        intermediate=cfg.intermediate,
        max_positions=cfg.max_positions,
        rope_theta=cfg.rope_theta,
        tokenizer=tokenizer,
    )


def encode_documents(tokenizer, documents: list[str], seq_len: int) -> list[list[int]]:
    """Token ids of every document followed by eos; a document longer than a row is an error."""
    eos = tokenizer.eos_token_id
    encoded = [list(ids) + [eos] for ids in tokenizer(documents, add_special_tokens=False)["input_ids"]]
    longest = max(len(ids) for ids in encoded)
    if longest > seq_len:
        raise WorkbenchError(
            f"a training document has {longest} tokens > train.seq_len={seq_len}; raise seq_len"
        )
    return encoded


def _rows(docs: list[list[int]], seq_len: int, gen: torch.Generator) -> Iterator[list[list[int]]]:
    """Endless stream of rows; each row is a list of whole documents, epochs reshuffled."""
    while True:
        row: list[list[int]] = []
        used = 0
        for i in torch.randperm(len(docs), generator=gen).tolist():
            if used + len(docs[i]) > seq_len:
                yield row
                row, used = [], 0
            row.append(docs[i])
            used += len(docs[i])
        if row:
            yield row


def _batch(rows: list[list[list[int]]], seq_len: int, pad_id: int):
    """(input_ids, position_ids, labels) of packed rows; labels are -100 on padding and document starts."""
    ids = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), seq_len), dtype=torch.long)
    labels = torch.full((len(rows), seq_len), -100, dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for doc in row:
            n = len(doc)
            ids[r, at : at + n] = torch.tensor(doc)
            pos[r, at : at + n] = torch.arange(n)
            labels[r, at + 1 : at + n] = torch.tensor(doc[1:])
            at += n
        pos[r, at:] = torch.arange(seq_len - at)  # padding: a segment of its own, never a target
    return ids, pos, labels


def lr_at(step: int, steps: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate multiplier: linear warmup, then cosine from 1 to ``min_ratio`` at the last step."""
    from ..training.schedule import lr_multiplier

    return lr_multiplier(
        step, steps, warmup=warmup, kind="cosine", min_ratio=min_ratio, end_at_last_step=True
    )


def _resume(folder, model, opt, rows, batch_rows: int) -> tuple[int, list[float], int, float]:
    """Load the latest checkpoint into ``model``/``opt`` and fast-forward the row stream to it.

    Returns ``(next step, losses so far, tokens so far, seconds so far)``; ``(0, [], 0, 0.0)`` without one.
    """
    from ..training.checkpoint import latest_checkpoint, load_checkpoint

    path = latest_checkpoint(folder) if folder is not None else None
    if path is None:
        return 0, [], 0, 0.0
    tensors, state = load_checkpoint(path, opt, model.named_parameters())
    model.load_state_dict(tensors)
    for _ in range(state["step"] * batch_rows):  # the same rows in the same order as an unbroken run
        next(rows)
    log.info("organism training resumed from %s (step %d)", path, state["step"])
    return state["step"], list(state["losses"]), int(state["tokens"]), float(state["seconds"])


def train_model(
    cfg: OrganismConfig,
    tokenizer,
    documents: list[str],
    *,
    seed: int,
    progress: bool = True,
    checkpoints: str | os.PathLike | None = None,
    save_every: int = 50,
    _stop_at: int | None = None,
):
    """Train a fresh ``Olmo2ForCausalLM`` on ``documents``; returns ``(model, TrainStats)``.

    With ``checkpoints`` (a folder), the run saves a checkpoint every ``save_every`` steps in the
    workbench's one format (:mod:`workbench.training.checkpoint`) and a later call resumes from the
    latest one, to the same weights as an unbroken run. ``_stop_at`` ends the call after that many steps
    (tests use it to play a killed build).
    """
    from transformers import Olmo2ForCausalLM

    from ..training.checkpoint import save_checkpoint

    tc = cfg.train
    threads = torch.get_num_threads()
    torch.set_num_threads(tc.threads)
    try:
        torch.manual_seed(seed)
        model = Olmo2ForCausalLM(olmo2_config(cfg.model, tokenizer))
        # Eager attention trains packed rows ~10-20% faster than SDPA on 2 CPU cores (bf16 autocast;
        # measured at hidden 256). Same math; the saved model uses the default (SDPA) again.
        model.set_attn_implementation("eager")
        model.train()
        docs = encode_documents(tokenizer, documents, tc.seq_len)
        gen = torch.Generator().manual_seed(seed)
        rows = _rows(docs, tc.seq_len, gen)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
        other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in n)]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": tc.weight_decay}, {"params": other, "weight_decay": 0.0}],
            lr=tc.lr,
            betas=(0.9, 0.95),
            eps=1e-8,
        )
        first, losses, tokens, before = _resume(checkpoints, model, opt, rows, tc.batch_rows)
        start = time.perf_counter() - before
        bar = tqdm(range(first, tc.steps), desc="train organism", disable=not progress, mininterval=2.0,
                   initial=first, total=tc.steps)  # fmt: skip
        for step in bar:
            if _stop_at is not None and step >= _stop_at:
                raise KeyboardInterrupt(f"stopped at step {step} (_stop_at)")
            for group in opt.param_groups:
                group["lr"] = tc.lr * lr_at(step, tc.steps, tc.warmup_steps, tc.min_lr_ratio)
            ids, pos, labels = _batch(
                [next(rows) for _ in range(tc.batch_rows)], tc.seq_len, tokenizer.pad_token_id
            )
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=tc.bf16):
                logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
            loss = F.cross_entropy(
                logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100
            )
            if not torch.isfinite(loss):
                raise WorkbenchError(
                    f"organism training diverged at step {step} (loss {loss.item()}); lower train.lr"
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            tokens += int((ids != tokenizer.pad_token_id).sum())
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            done = step + 1
            if checkpoints is not None and save_every and done % save_every == 0 and done < tc.steps:
                state = {
                    "step": done,
                    "losses": losses,
                    "tokens": tokens,
                    "seconds": time.perf_counter() - start,
                }
                save_checkpoint(checkpoints, done, model.state_dict(), opt, model.named_parameters(), state)
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    model.set_attn_implementation("sdpa")
    model.eval()
    tail = losses[-max(1, len(losses) // 20) :]
    stats = TrainStats(tc.steps, tokens, seconds, tokens / max(seconds, 1e-9), sum(tail) / len(tail))
    log.info(
        "trained %d steps, %d tokens in %.0f s (%.0f tok/s), final loss %.3f",
        stats.steps,
        stats.tokens,
        seconds,
        stats.tokens_per_second,
        stats.final_loss,
    )
    return model, stats
