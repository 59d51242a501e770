"""Token-replacement activation patching (Zhang & Nanda 2023; Heimersheim & Nanda 2024), batched.

Two prompts of the same token length, ``clean`` and ``corrupted``, differ in the detail under study.
``direction="denoise"`` runs the corrupted prompt and writes one clean activation per cell (what
recovers the clean behaviour: sufficiency); ``direction="noise"`` runs the clean prompt and writes one
corrupted activation (what breaks it: necessity). Each batch row is one cell, so one forward covers
``max_batch_tokens // T`` cells; the writes go through the hook engine as paired (row, position) patches.

Site kinds (``[layers, positions]`` grids, ``heads`` adds a head axis):

- ``resid_pre`` (alias ``resid``): the residual stream entering block l (TransformerLens ``resid_pre``);
- ``resid_post``: the residual stream after block l (ROME's ``hidden``);
- ``attn`` / ``mlp``: what the sublayer writes into the residual stream at layer l;
- ``heads``: one attention head's output before the output projection (TransformerLens ``z``).

When to use which corruption: token replacement keeps the corrupted run in-distribution and contrasts
two specific answers, so Zhang & Nanda recommend it (with ``logit_diff``) for localizing a behaviour;
Gaussian noise on the subject embeddings (:func:`workbench.causal_trace`, ROME) needs no counterfactual
prompt and asks where information about the subject is carried, but its corrupted inputs are
off-distribution and its probability metric saturates; use it for fact recall over many facts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from ..config import make_config
from ..errors import WorkbenchError
from .config import SITE_KINDS, PatchConfig
from .restore import last_logits
from .result import PatchResult

_ALIASES = {"resid": "resid_pre"}
METRICS = ("logit_diff", "prob")
# Modules whose output is the residual stream entering block 0 where the "embed" site is not (absolute
# position embeddings are added after the token embedding on these families; dropout is identity in eval).
_RESID0 = {"gpt2": "transformer.drop", "gpt_neox": "gpt_neox.emb_dropout"}


def site_kinds(sites: Sequence[str]) -> list[str]:
    """Validate site kinds and resolve aliases (``resid`` -> ``resid_pre``)."""
    if isinstance(sites, str):
        sites = [sites]
    out = [_ALIASES.get(s, s) for s in sites]
    bad = [s for s in out if s not in SITE_KINDS]
    if bad or not out:
        raise WorkbenchError(f"unknown patching site(s) {bad}; use {', '.join(SITE_KINDS)} (or 'resid')")
    return list(dict.fromkeys(out))


def site_name(lm: Any, kind: str, layer: int) -> str:
    """The hook-engine site of one (kind, layer)."""
    if kind == "resid_pre":
        return f"layers.{layer - 1}" if layer > 0 else _RESID0.get(lm.family, "embed")
    return {
        "resid_post": f"layers.{layer}",
        "attn": f"layers.{layer}.attn",
        "mlp": f"layers.{layer}.mlp",
        "heads": f"layers.{layer}.attn.heads",
    }[kind]


@dataclasses.dataclass
class PatchInputs:
    """Tokenized prompt pair, answer tokens and the two unpatched metrics."""

    clean: torch.Tensor  # [1, T]
    corrupted: torch.Tensor
    answers: tuple[int, ...]
    metric: str
    clean_metric: float
    corrupted_metric: float
    tokens: list[str]


def _ids(lm: Any, prompt: str | Sequence[int] | torch.Tensor) -> torch.Tensor:
    if isinstance(prompt, str):
        tokenizer = lm.require_tokenizer("patching a text prompt (or pass token ids)")
        return torch.tensor([tokenizer(prompt)["input_ids"]], device=lm.device)
    t = torch.as_tensor(prompt, device=lm.device, dtype=torch.long)
    return t.view(1, -1)


def _answer_id(lm: Any, a: str | int) -> int:
    if isinstance(a, int):
        return a
    ids = lm.require_tokenizer("a text answer (or pass its token id)")(a, add_special_tokens=False)[
        "input_ids"
    ]
    if not ids:
        raise WorkbenchError(f"answer {a!r} tokenizes to nothing; give a token string such as ' Paris'")
    return int(ids[0])


def metric_values(logits: torch.Tensor, metric: str, answers: Sequence[int]) -> torch.Tensor:
    """The metric per row from last-position logits ``[R, V]``."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 up, fp64 kept
    if metric == "logit_diff":
        return logits[:, answers[0]] - logits[:, answers[1]]
    return torch.softmax(logits, dim=-1)[:, answers[0]]


def prepare(
    lm: Any, clean: Any, corrupted: Any, metric: str, answers: Sequence[str | int] | None
) -> PatchInputs:
    """Tokenize the pair, check lengths, choose the answer tokens and measure both unpatched runs."""
    if metric not in METRICS:
        raise WorkbenchError(f"unknown metric {metric!r}; use one of {', '.join(METRICS)}")
    c, k = _ids(lm, clean), _ids(lm, corrupted)
    if c.shape != k.shape:
        raise WorkbenchError(
            f"clean and corrupted prompts tokenize to {c.shape[1]} and {k.shape[1]} tokens; token-replacement "
            f"patching needs equal lengths (choose a corruption of the same token length)"
        )
    with torch.no_grad():
        lc, lk = last_logits(lm, c), last_logits(lm, k)
    if answers is None:
        answers = (
            (int(lc[0].argmax()), int(lk[0].argmax())) if metric == "logit_diff" else (int(lc[0].argmax()),)
        )
        if metric == "logit_diff" and answers[0] == answers[1]:
            raise WorkbenchError(
                "clean and corrupted runs predict the same token; pass answers=(correct, wrong)"
            )
    else:
        answers = tuple(
            _answer_id(lm, a) for a in ([answers] if isinstance(answers, (str, int)) else answers)
        )
        need = 2 if metric == "logit_diff" else 1
        if len(answers) < need:
            raise WorkbenchError(
                f"metric {metric!r} needs {need} answer tokens (correct, wrong); got {len(answers)}"
            )
    tokens = [lm.tokenizer.decode([t]) for t in c[0].tolist()]
    return PatchInputs(
        c,
        k,
        tuple(answers),
        metric,
        float(metric_values(lc, metric, answers)[0]),
        float(metric_values(lk, metric, answers)[0]),
        tokens,
    )


def _cells(kinds: list[str], n_layers: int, n_pos: int, n_heads: int) -> list[tuple[str, int, int, int]]:
    """Every (kind, layer, position, head) cell; head is -1 for whole-vector sites."""
    out = []
    for kind in kinds:
        for layer in range(n_layers):
            for pos in range(n_pos):
                heads = range(n_heads) if kind == "heads" else (-1,)
                out += [(kind, layer, pos, h) for h in heads]
    return out


def patch(
    lm: Any,
    clean: Any,
    corrupted: Any,
    config: PatchConfig | None = None,
    *,
    progress: bool = True,
    **overrides: Any,
) -> PatchResult:
    """Exact activation patching of every (layer, position[, head]) cell of ``sites``, batched.

    ``clean``/``corrupted`` are prompts (strings or token ids) of equal token length. Settings come from
    ``config`` (:class:`PatchConfig`) or keyword overrides of its fields: ``metric`` is ``logit_diff``
    (``answers[0]`` minus ``answers[1]``, default: the clean and the corrupted top tokens) or ``prob``
    (probability of ``answers[0]``), read at the last position.
    """
    from tqdm.auto import tqdm

    from ..hooks import run_with_cache

    cfg = make_config(PatchConfig, config, overrides)
    sites, metric, answers, direction = cfg.sites, cfg.metric, cfg.answers, cfg.direction
    max_batch_tokens = cfg.max_batch_tokens
    kinds = site_kinds(sites)
    inp = prepare(lm, clean, corrupted, metric, answers)
    src, tgt = (inp.clean, inp.corrupted) if direction == "denoise" else (inp.corrupted, inp.clean)
    L, T, H = lm.n_layers, src.shape[1], lm.n_heads
    names = {site_name(lm, k, l) for k in kinds for l in range(L)}
    _, cache = run_with_cache(lm, {"input_ids": src}, sorted(names))
    cells = _cells(kinds, L, T, H)
    per = max(1, max_batch_tokens // T)
    values = torch.empty(len(cells))
    with tqdm(total=len(cells), desc="patching", unit="cell", disable=not progress) as bar:
        for start in range(0, len(cells), per):
            chunk = cells[start : start + per]
            groups: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
            for row, (kind, layer, pos, head) in enumerate(chunk):
                rows, positions = groups.setdefault((site_name(lm, kind, layer), head), ([], []))
                rows.append(row)
                positions.append(pos)
            with lm.hooks() as h, torch.no_grad():
                for (name, head), (rows, positions) in groups.items():
                    h.patch(
                        name,
                        source=cache[name],
                        cells=(torch.tensor(rows), torch.tensor(positions)),
                        heads=None if head < 0 else [head],
                    )
                logits = last_logits(lm, tgt.expand(len(chunk), -1))
            values[start : start + len(chunk)] = metric_values(logits, metric, inp.answers).cpu()
            bar.update(len(chunk))
    scores, at = {}, 0
    for kind in kinds:
        shape = (L, T, H) if kind == "heads" else (L, T)
        n = int(torch.tensor(shape).prod())
        scores[kind] = values[at : at + n].view(shape).clone()
        at += n
    return PatchResult(
        scores=scores,
        clean=inp.clean_metric,
        corrupted=inp.corrupted_metric,
        metric=metric,
        direction=direction,
        tokens=inp.tokens,
        method="exact",
        answers=inp.answers,
    )
