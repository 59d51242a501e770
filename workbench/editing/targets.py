"""Target values: the δ that, added at the subject's last token, makes the model say the new target.

As ROME's ``compute_v`` and MEMIT's ``compute_z`` (kmeng01/rome ``rome/compute_v.py``, kmeng01/memit
``memit/compute_z.py``): δ is added at ``site`` on the subject's last token of every context prompt
(each followed by the target's tokens but the last) and of the essence prompt ``"{subject} is a"``; Adam
minimises, per request,

    mean_prompts( NLL(target | prompt) / n_target_tokens )             the new target
    + kl_factor · KL(p_now ‖ p_before) on the essence prompt's          keep what the subject is
      next-token distribution at the subject's last token               (torch's kl_div(before, now))
    + v_weight_decay · ‖δ‖ / ‖v_init‖²                                  stay small

and after each step δ is projected into ``‖δ‖ ≤ clamp_norm_factor · ‖v_init‖``, where ``v_init`` is the
site's value on the bare prompt. A request stops once its loss is below ``early_stop_loss``. Requests are
optimised in batches, each with its own δ row; a row's loss depends only on its own δ, so the result is
that of optimising them one at a time. δ enters through the hook engine: ``h.add`` on the selected
(row, position) cells carries a tensor that requires grad (the engine clones the activation before
writing, so autograd sees an ordinary index-put).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .keys import context_rows, encode, pad, pad_id
from .requests import EditRequest


@dataclasses.dataclass
class Targets:
    """Per unit (a request, or the requests sharing a subject): the site's value on the bare prompt, the
    optimised δ, and how far the target got."""

    init: torch.Tensor
    """``[R, d]`` value at the site on the bare prompt (float64, CPU)."""
    delta: torch.Tensor
    """``[R, d]`` optimised δ (float64, CPU)."""
    prob: list[float]
    """Mean probability of the target tokens over the context prompts at the end (exp of -NLL)."""
    steps: list[int]
    """Optimisation steps taken per request."""

    @property
    def value(self) -> torch.Tensor:
        """``init + δ``: the target value v* (ROME) / z (MEMIT)."""
        return self.init + self.delta


@contextlib.contextmanager
def frozen(model: Any) -> Iterator[None]:
    """Eval mode and no parameter gradients for the duration (restored after)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    training = model.training
    for p, _ in flags:
        p.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(training)


def _target_ids(tokenizer: Any, target: str) -> list[int]:
    return list(tokenizer(target, add_special_tokens=False)["input_ids"])


def _batch(lm: Any, units: Sequence[Sequence[EditRequest]], groups: list[list[str]], cfg: Any) -> dict:
    """Rows (every request's context prompts + one essence prompt per unit), labels and where δ goes."""
    tok = lm.tokenizer
    rows, owner, pos, labels, kl_rows = [], [], [], [], []
    for u, unit in enumerate(units):
        for req in unit:
            target = _target_ids(tok, req.target_new)
            for row in context_rows(tok, [req], groups, cfg.fact_token):
                ids = row.ids + target[:-1]
                lab = [-100] * (len(row.ids) - 1) + target + [-100]
                rows.append(ids)
                labels.append(lab[: len(ids)])
                owner.append(u)
                pos.append(row.pos)
        subject = unit[0].subject
        essence = cfg.kl_prompt.replace("{}", subject)
        ids, at = encode(tok, essence, subject, f"essence prompt of {subject!r}", cfg.fact_token)
        kl_rows.append(len(rows))
        rows.append(ids)
        labels.append([-100] * len(ids))
        owner.append(u)
        pos.append(at)
    batch = pad(rows, pad_id(tok), lm.device)
    width = batch["input_ids"].shape[1]
    lab = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, la in enumerate(labels):
        lab[i, : len(la)] = torch.tensor(la, dtype=torch.long)
    return {
        "batch": batch,
        "labels": lab.to(lm.device),
        "owner": torch.tensor(owner, device=lm.device),
        "pos": torch.tensor(pos, device=lm.device),
        "kl_rows": torch.tensor(kl_rows, device=lm.device),
        "first_rows": [owner.index(u) for u in range(len(units))],
    }


def _losses(
    logits, b, delta, init_norm, kl_init, cfg, n_req
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per request (loss, nll, kl_log_probs_now); log-softmax only where a label or the KL is read."""
    labels, owner, kl_rows = b["labels"], b["owner"], b["kl_rows"]
    mask = labels != -100
    r, t = mask.nonzero(as_tuple=True)
    tok_lp = F.log_softmax(logits[r, t].float(), dim=-1).gather(-1, labels[r, t][:, None])[:, 0]
    per_row = torch.zeros(labels.shape[0], device=logits.device).index_add(0, r, -tok_lp)
    per_row = per_row / mask.sum(1).clamp_min(1)
    rew = torch.ones_like(per_row, dtype=torch.bool)
    rew[kl_rows] = False
    nll = torch.zeros(n_req, device=logits.device).index_add(0, owner[rew], per_row[rew])
    nll = nll / torch.bincount(owner[rew], minlength=n_req).clamp_min(1)
    kl_lp = F.log_softmax(logits[kl_rows, b["pos"][kl_rows]].float(), dim=-1)
    kl = torch.zeros_like(nll)
    if kl_init is not None:
        kl = (kl_lp.exp() * (kl_lp - kl_init)).sum(-1)  # KL(now || before): torch.kl_div(before, now)
    decay = delta.norm(dim=-1) / init_norm.pow(2)
    loss = nll + cfg.kl_factor * kl + cfg.v_weight_decay * decay
    return loss, nll, kl_lp


def _optimise(lm: Any, units: Sequence[Sequence[EditRequest]], site: str, groups, cfg) -> Targets:
    b = _batch(lm, units, groups, cfg)
    n_req = len(units)
    rows = torch.arange(b["owner"].shape[0], device=lm.device)
    with torch.no_grad(), lm.hooks() as h:
        cap = h.capture(site)
        lm.model(**b["batch"])
    first = torch.tensor(b["first_rows"], device=lm.device)
    init = cap.value[first, b["pos"][first]].float()
    delta = torch.zeros_like(init, requires_grad=True)
    init_norm = init.norm(dim=-1).clamp_min(1e-12)
    opt = torch.optim.Adam([delta], lr=cfg.v_lr)
    done = torch.zeros(n_req, dtype=torch.bool, device=lm.device)
    steps = [0] * n_req
    kl_init, nll = None, None
    for it in range(cfg.v_num_grad_steps):
        opt.zero_grad()
        with lm.hooks() as h:
            h.add(site, delta[b["owner"]], cells=(rows, b["pos"]))
            logits = lm.model(**b["batch"]).logits
        loss, nll, kl_lp = _losses(logits, b, delta, init_norm, kl_init, cfg, n_req)
        if kl_init is None:
            kl_init = kl_lp.detach()
        done = done | (loss.detach() < cfg.early_stop_loss)
        if bool(done.all()) or it == cfg.v_num_grad_steps - 1:
            break
        kept = delta.detach().clone()
        loss[~done].sum().backward()
        opt.step()
        with torch.no_grad():
            delta[done] = kept[done]
            limit = cfg.clamp_norm_factor * init_norm
            norm = delta.norm(dim=-1)
            over = norm > limit
            delta[over] = delta[over] * (limit[over] / norm[over])[:, None]
        for r in (~done).nonzero().flatten().tolist():
            steps[r] += 1
    prob = torch.exp(-nll.detach()).tolist()
    return Targets(init.double().cpu(), delta.detach().double().cpu(), prob, steps)


def optimise_targets(
    lm: Any,
    requests: Sequence[EditRequest],
    site: str,
    groups: list[list[str]],
    cfg: Any,
    *,
    units: Sequence[Sequence[int]] | None = None,
    progress: bool = False,
) -> Targets:
    """δ at ``site`` for every unit of requests (default: each request alone), ``cfg.batch_size`` units
    per batch. A unit's requests share one δ (MEMIT: the requests about one subject share its key)."""
    units = [[i] for i in range(len(requests))] if units is None else [list(u) for u in units]
    parts = []
    starts = range(0, len(units), cfg.batch_size)
    with frozen(lm.model):
        for start in tqdm(starts, desc="target values", disable=not progress or len(starts) < 2, leave=False):
            chunk = [[requests[i] for i in u] for u in units[start : start + cfg.batch_size]]
            parts.append(_optimise(lm, chunk, site, groups, cfg))
    return Targets(
        torch.cat([p.init for p in parts]),
        torch.cat([p.delta for p in parts]),
        [x for p in parts for x in p.prob],
        [x for p in parts for x in p.steps],
    )


def subject_units(requests: Sequence[EditRequest], fact_token: str) -> list[list[int]]:
    """Requests grouped by subject when the key is read on the subject (its keys are then identical: a causal
    model has read nothing after the subject yet), else one unit per request."""
    if fact_token not in ("subject_last", "subject_first"):
        return [[i] for i in range(len(requests))]
    by: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        by.setdefault(r.subject, []).append(i)
    return list(by.values())
