"""Editing as unlearning: write a non-answer into the model for every forget record it is given.

Each SemEval QA record of the forget split becomes an :class:`EditRequest` whose prompt is the record's
``input`` exactly as the SemEval evaluation feeds it, whose subject is the question's named entity
(:func:`workbench.data.subject_of`) and whose ``target_true`` is the record's answer. ``target_new`` is,
by default (``target="swap"``), the answer of *another* given forget record to the same question (the
question with its subject blanked out), rotated among them: a value the model can already say, so the
edit only has to re-route it (a decoy, as obfuscation-style unlearning uses). A model trained on a world
without refusals gives a word it has never seen (" unknown") probability ~0, and the target-value
optimisation cannot reach it; with a real model a fixed non-answer (``target=" I don't know"``) works. The editor (MEMIT by default) then writes all of
them in one batch, so the model's answer to the given questions moves to the non-answer while the key
statistics C = E[k kᵀ] hold every other key (other people's questions) in place: the closed-form
counterpart of gradient unlearning, scored by the same SemEval suite (``compare_methods.py --methods
edit``, the pipeline's ``edit`` method).

Sentence-completion records are not edited (their continuation is a paragraph, not a fact); questions that
name no entity are left out, and both are counted in the log.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from ..data import read_semeval, subject_of
from ..errors import WorkbenchError
from .requests import EditRequest, leading_space

log = logging.getLogger(__name__)

SWAP = "swap"
"""``target``: another given record's answer to the same question (a decoy the model can already say)."""


def check_target(target: str) -> None:
    """A forget target is 'swap' or a non-empty non-answer (a one-line WorkbenchError otherwise)."""
    if not str(target).strip():
        raise WorkbenchError(
            "the forget target is empty; give 'swap' or a non-answer such as \" I don't know\""
        )


def forget_requests(
    data: str | os.PathLike | list,
    *,
    target: str = SWAP,
    part: str | None = "train",
    split: str = "forget",
    tokenizer: Any = None,
) -> list[EditRequest]:
    """The edit requests of a SemEval data folder's ``split`` QA records (``part``: train | validation | None).

    ``data`` is a folder or file in the SemEval layout (an organism folder, or the public files as they
    are), or a list of records already read. With a ``tokenizer``, a swapped decoy is cut to its first
    token that departs from the true answer's (``" December"`` for ``" November 6, 1989"``), and the
    answer's tokens before it join the prompt (:func:`_at_departure`): exact match breaks at the first
    differing token, and an edit keyed on one position can only move the token predicted there (the later
    digits of a memorised number are read from the subject at their own positions).
    """
    check_target(target)
    records = data if isinstance(data, list) else read_semeval(data, splits=(split,), part=part)
    kept, sc, no_subject = [], 0, 0
    for r in records:
        if r.kind != "qa":
            sc += 1
            continue
        subject = subject_of(r.input)
        if subject is None or subject not in r.input:
            no_subject += 1
            continue
        kept.append((r, subject))
    decoys = _decoys(kept) if target == SWAP else {}
    out = []
    for r, subject in kept:
        new = decoys.get(r.id) if target == SWAP else target
        if new is None:  # a question no other record shares: leave it out rather than invent a value
            no_subject += 1
            continue
        prompt, new, true = r.input, leading_space(new), leading_space(r.output)
        if target == SWAP and tokenizer is not None:
            prompt, new, true = _at_departure(tokenizer, prompt, new, true)
        out.append(
            EditRequest(
                prompt=prompt,
                subject=subject,
                target_new=new,
                target_true=true,
                extra={"case_id": r.id, "side": r.split, "task": r.task},
            )
        )
    log.info("%d forget requests (%d sentence completions and %d questions without a subject or decoy left out)",
             len(out), sc, no_subject)  # fmt: skip
    if not out:
        raise WorkbenchError(f"{data}: no {split} QA record names a subject; nothing to edit")
    return out


def _at_departure(tokenizer: Any, prompt: str, decoy: str, answer: str) -> tuple[str, str, str]:
    """Move the edit to the token where the decoy departs from the answer.

    The answer's tokens before the departure (the space before a number, the area code's digits) are
    appended to the prompt, as greedy generation will have produced them; the target is the decoy's
    departing token and the true target the answer's remaining tokens. ``" 7"`` against ``" 202-13-3132"``
    becomes prompt ``"...Answer: "`` -> ``"7"`` (true ``"202-13-3132"``): the edited key is the context at
    the step where the model would say the answer's first differing token. Falls back to the whole decoy
    when the extended prompt does not tokenize as the prompt plus the shared tokens.
    """
    enc = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    d, a = enc(decoy), enc(answer)
    cut = next((i for i, t in enumerate(d) if i >= len(a) or a[i] != t), len(d) - 1)
    end = cut + 1  # the target: the departing token, and more while it is only whitespace (" " + "7")
    while end < len(d) and not tokenizer.decode(d[cut:end]).strip():
        end += 1
    if cut == 0:
        return prompt, tokenizer.decode(d[:end]), answer
    shared = tokenizer.decode(d[:cut])
    target = tokenizer.decode(d[cut:end])
    if enc(prompt + shared) != enc(prompt) + d[:cut] or not target.strip():
        return prompt, tokenizer.decode(d[:end]), answer
    return prompt + shared, target, tokenizer.decode(a[cut:])


def _decoys(kept: list) -> dict[str, str]:
    """Record id -> the answer of the next record (in order) asking the same question of another subject
    with a different answer; a question that no other record asks (a story's "Who helped Soel ...?") takes
    the next answer of the same task instead."""
    groups: dict[str, list] = {}
    tasks: dict[str, list] = {}
    for r, subject in kept:
        groups.setdefault(r.input.replace(subject, "{}"), []).append(r)
        tasks.setdefault(r.task, []).append(r)

    def rotate(recs: list, r: Any) -> str | None:
        i = recs.index(r)
        for j in range(1, len(recs)):
            other = recs[(i + j) % len(recs)]
            if other.output.strip() != r.output.strip():
                return other.output
        return None

    out: dict[str, str] = {}
    for recs in groups.values():
        for r in recs:
            decoy = rotate(recs, r) or rotate(tasks[r.task], r)
            if decoy is not None:
                out[r.id] = decoy
    return out


def edit_to_forget(
    lm: Any,
    data: str | os.PathLike,
    method: str = "memit",
    *,
    layers: Any = None,
    trace: Any = None,
    target: str = SWAP,
    part: str | None = "train",
    progress: bool = True,
    **overrides: Any,
) -> Any:
    """Edit ``lm`` in place so that every given forget question answers ``target``; returns the EditResult."""
    from . import edit

    reqs = forget_requests(data, target=target, part=part, tokenizer=lm.tokenizer)
    return edit(lm, reqs, method=method, layers=layers, trace=trace, progress=progress, **overrides)


@dataclasses.dataclass
class ForgetEdit:
    """Editing as unlearning (the pipeline's and compare_methods' ``edit`` method): its settings."""

    method: str = "memit"
    """the editor: memit | alphaedit | rome (rome writes the requests one after another)"""
    layers: list[int] | None = None
    """layers to edit (None: :func:`answer_layers` of the trace, where the model reads the answer at the
    question's last token)"""
    target: str = SWAP
    """'swap' (another given record's answer, cut where it departs from the true one) or a fixed non-answer"""
    options: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(FORGET_OPTIONS))
    """the editor's hyperparameters on top of its published defaults (see FORGET_OPTIONS)"""
    stats_source: str | None = None
    """text for the key statistics (default: the model folder's corpus)"""

    def __post_init__(self) -> None:
        from . import editor

        editor(self.method)  # an unknown editor: one line naming the known ones
        check_target(self.target)


FORGET_OPTIONS: dict[str, Any] = {
    "fact_token": "last",
    "clamp_norm_factor": 4.0,
    "mom2_update_weight": 10.0,
    "context_counts": (0,),
    "v_num_grad_steps": 50,
}
"""What editing-as-unlearning changes from MEMIT's published GPT-J settings, and why (measured on the
organism with analyses/selective_amnesia/compare_methods.py --methods edit):

- ``fact_token: last``: the key is the question's last token. A SemEval record asks several questions of
  one subject, each to be forgotten with its own decoy; at the subject's tokens a causal model has read
  none of the question yet, so all of a subject's questions share one key and one target value, and
  MEMIT cannot send them to different decoys. The organism reads the answer at the last token anyway.
- ``clamp_norm_factor: 4`` (ROME's value; MEMIT GPT-J 0.75): flipping the answer's first token needs a
  target shift of about 1.5x the residual's norm at the edited position.
- ``mom2_update_weight: 10`` (MEMIT GPT-J 15000): λ multiplies C = E[k kᵀ], whose scale depends on the
  model; at 15000 the organism's update barely moves the edited keys (forget QA unchanged).
- ``context_counts: (0,)`` and ``v_num_grad_steps: 50``: the target value is fitted on the bare question
  only, the prompt the evaluation asks (context prefixes serve paraphrase generalisation, which a
  forget record does not need), and for longer: given forget QA 0.556 -> 0.524 at layers 2-3, 3x faster.
"""


def answer_layers(trace: Any, width: int | None = None) -> list[int]:
    """Where the model reads the answer at the question's last token: the ``width`` consecutive layers
    (default: a fifth of the depth, at least 2) with the largest MLP AIE at the *last* token, layer 0 left
    out. With ``fact_token: last`` the key is that token's MLP input; at layer 0 it depends only on the
    last few tokens ("Answer:"), which every question shares, so an edit there rewrites every question
    (measured on the organism: layers 0-2 took retain QA from 1.00 to 0.01)."""
    from ..tracing.result import TraceResult, default_window

    tr = trace if isinstance(trace, TraceResult) else TraceResult.load(trace)
    eff = tr.layer_effect("mlp", "last").clone()
    if tr.n_layers < 2:
        return [0]
    eff[0] = float("-inf")
    width = max(1, min(width or max(2, default_window(tr.n_layers)), tr.n_layers - 1))
    sums = eff[1:].unfold(0, width, 1).sum(-1)
    start = 1 + int(sums.argmax())
    return list(range(start, start + width))


def run_forget_edit(
    model: str, data: str, out: str | os.PathLike, params: ForgetEdit | None = None,
    trace: Any = None, *, dtype: str | None = None, progress: bool = True,
) -> dict:  # fmt: skip
    """Load ``model``, edit every given forget QA record of ``data`` to its decoy, save to ``out/model``.

    ``trace`` (a TraceResult or run folder) chooses the layers when ``params.layers`` is None. Returns
    what the pipeline records for an unlearning run (model folder, layers, trainable share, time).
    """
    import time
    from pathlib import Path

    from ..models import load

    p = params or ForgetEdit()
    if p.layers is None and trace is None:
        raise WorkbenchError("edit: no layers; set the edit method's layers or give a trace")
    layers = p.layers if p.layers is not None else answer_layers(trace)
    t0 = time.perf_counter()
    lm = load(model, dtype=dtype)
    res = edit_to_forget(
        lm, data, p.method, layers=layers, target=p.target, progress=progress,
        stats_source=p.stats_source, **p.options,
    )  # fmt: skip
    folder = res.save(Path(out) / "model")
    edited = sum(int(d.numel()) for d in res.deltas.values())
    total = sum(int(q.numel()) for q in lm.model.parameters())
    return {
        "model": str(folder),
        "layers": list(res.layers),
        "trainable": edited,
        "total": total,
        "share": edited / total,
        "wall_s": time.perf_counter() - t0,
        "steps": 0,
        "stopped": None,
        "best_step": None,
        "curves": None,
        "requests": len(res.requests),
    }
