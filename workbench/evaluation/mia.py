"""Membership inference: LOSS, zlib, Min-K% and Min-K%++ attacks, each with its AUC and MIA score.

Every attack gives each document a score where *higher means "more likely a member"*; the AUC is the
ROC AUC of those scores with members labelled 1 (the official SemEval-2025 Task 4 evaluation computes
``roc_curve(labels, -loss)`` with members = 1). The **MIA score** = ``1 - 2·|AUC - 0.5|`` (same script):
1 when the attack cannot tell members from nonmembers, 0 when it separates them perfectly.

Attacks (token log-probabilities ``log p(x_t | x_<t)`` of the document as tokenized by default, i.e. the
official ``model(input_ids, labels=input_ids).loss`` is their negated mean):

- ``loss`` (Yeom et al. 2018): score = −mean NLL. This is the official SemEval MIA.
- ``zlib`` (Carlini et al. 2021, "Extracting Training Data from LLMs"): score = −NLL / zlib entropy,
  the mean NLL divided by the length in bytes of the zlib-compressed UTF-8 text.
- ``min_k`` (Shi et al. 2024, "Detecting Pretraining Data from LLMs"): the mean of the k% lowest token
  log-probabilities.
- ``min_k_pp`` (Zhang et al. 2024, "Min-K%++"): per token ``(log p(x_t) − μ_t) / σ_t`` with μ_t, σ_t
  the mean and standard deviation of ``log p(·)`` under the model's own next-token distribution; the
  mean of the k% lowest of these.
"""

from __future__ import annotations

import dataclasses
import math
import os
import zlib
from collections.abc import Sequence

import torch

from ..data import MIADoc, read_mia
from ..errors import WorkbenchError

ATTACKS = ("loss", "zlib", "min_k", "min_k_pp")


def mia_score(auc: float) -> float:
    """The SemEval-2025 Task 4 MIA score ``1 - 2·|AUC - 0.5|`` (1 = indistinguishable, 0 = fully separable)."""
    return 1.0 - 2.0 * abs(float(auc) - 0.5)


@dataclasses.dataclass(frozen=True)
class TokenStats:
    """Per-token statistics of one document (over the T−1 predicted positions)."""

    logprob: torch.Tensor  # log p(x_t | x_<t)
    mu: torch.Tensor  # E_{z~p}[log p(z)]
    sigma: torch.Tensor  # std_{z~p}[log p(z)]


@dataclasses.dataclass(frozen=True)
class MIADocScore:
    """One document's attack scores (higher = more member-like) and its mean NLL."""

    id: str
    member: bool
    nll: float
    scores: dict[str, float]


@dataclasses.dataclass(frozen=True)
class AttackResult:
    """One attack's AUC (members = 1) and MIA score."""

    name: str
    auc: float
    score: float


@dataclasses.dataclass
class MIAResult:
    """Membership-inference results; ``auc`` / ``score`` are the official LOSS attack's."""

    attacks: dict[str, AttackResult]
    docs: list[MIADocScore]
    k: float

    @property
    def auc(self) -> float:
        """The LOSS-attack AUC (the official SemEval ``mia_loss_acc``)."""
        return self.attacks["loss"].auc

    @property
    def score(self) -> float:
        """The LOSS-attack MIA score (the official ``mia_final_score``)."""
        return self.attacks["loss"].score

    def metrics(self) -> dict[str, float]:
        """A flat dict for ``metrics.json``."""
        out = {"auc": self.auc, "score": self.score, "k": self.k}
        for a in self.attacks.values():
            out[f"{a.name}/auc"] = a.auc
            out[f"{a.name}/score"] = a.score
        for member in (True, False):
            nll = [d.nll for d in self.docs if d.member == member]
            out[f"{'member' if member else 'nonmember'}_mean_nll"] = sum(nll) / len(nll)
        return out


@torch.inference_mode()
def token_stats(
    lm, texts: Sequence[str], *, batch_size: int = 8, max_length: int | None = None, progress: bool = False
) -> list[TokenStats]:
    """Token log-probabilities (and μ, σ of the next-token log-distribution) of each text, batched."""
    from tqdm.auto import tqdm

    model, tok = lm.model, lm.tokenizer
    device = next(model.parameters()).device
    encoded = tok(
        list(texts), add_special_tokens=True, truncation=max_length is not None, max_length=max_length
    )["input_ids"]
    out: list[TokenStats | None] = [None] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for start in tqdm(range(0, len(order), batch_size), desc="mia", disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(idx):
            ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, : len(encoded[i])] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float()
        for row, i in enumerate(idx):
            n = len(encoded[i])
            if n < 2:
                raise WorkbenchError(
                    f"MIA document {i} has fewer than 2 tokens; membership needs a real document"
                )
            logp = torch.log_softmax(logits[row, : n - 1], dim=-1)
            target = ids[row, 1:n].to(device)
            probs = logp.exp()
            mu = (probs * logp).sum(-1)
            var = (probs * (logp - mu[:, None]).square()).sum(-1)  # centred: no cancellation
            out[i] = TokenStats(logp.gather(-1, target[:, None])[:, 0].cpu(), mu.cpu(), var.sqrt().cpu())
    return out  # type: ignore[return-value]


def _lowest_mean(x: torch.Tensor, k: float) -> float:
    n = max(1, int(math.ceil(len(x) * k)))  # at least one token, as Min-K% rounds up small documents
    return float(torch.topk(x, n, largest=False).values.mean())


def attack_scores(text: str, stats: TokenStats, k: float = 0.2) -> dict[str, float]:
    """The four attacks' scores of one document (higher = more member-like)."""
    nll = float(-stats.logprob.mean())
    zlib_len = len(zlib.compress(text.encode("utf-8")))
    normed = (stats.logprob - stats.mu) / stats.sigma.clamp(min=1e-12)
    return {
        "loss": -nll,
        "zlib": -nll / zlib_len,
        "min_k": _lowest_mean(stats.logprob, k),
        "min_k_pp": _lowest_mean(normed, k),
    }


def auc_of(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC with members labelled 1 and the given scores (higher = member)."""
    from .scoring import roc_auc

    return float(roc_auc(member_scores, nonmember_scores))


def run_mia(
    lm,
    members: Sequence[MIADoc],
    nonmembers: Sequence[MIADoc],
    *,
    k: float = 0.2,
    batch_size: int = 8,
    max_length: int | None = None,
    progress: bool = False,
) -> MIAResult:
    """Score members and nonmembers with every attack and compute each attack's AUC and MIA score."""
    if not 0 < k <= 1:
        raise WorkbenchError(f"Min-K% fraction k={k} must be in (0, 1]; e.g. 0.2 for 20%")
    if not members or not nonmembers:
        raise WorkbenchError("membership inference needs at least one member and one nonmember document")
    docs = [(d, True) for d in members] + [(d, False) for d in nonmembers]
    stats = token_stats(
        lm, [d.document for d, _ in docs], batch_size=batch_size, max_length=max_length, progress=progress
    )
    rows = []
    for (doc, member), st in zip(docs, stats):
        rows.append(
            MIADocScore(doc.id, member, float(-st.logprob.mean()), attack_scores(doc.document, st, k))
        )
    attacks = {}
    for name in ATTACKS:
        auc = auc_of(
            [r.scores[name] for r in rows if r.member], [r.scores[name] for r in rows if not r.member]
        )
        attacks[name] = AttackResult(name, auc, mia_score(auc))
    return MIAResult(attacks, rows, k)


def evaluate_mia(
    lm,
    data: str | os.PathLike,
    *,
    k: float = 0.2,
    batch_size: int = 8,
    max_length: int | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> MIAResult:
    """Read ``member.jsonl`` / ``nonmember.jsonl`` under ``data`` (or ``data/mia``) and run every attack.

    ``limit`` keeps a seeded sample of at most that many documents per side.
    """
    import random

    members, nonmembers = read_mia(data)
    if limit is not None:
        rng = random.Random(seed)
        members = members if len(members) <= limit else rng.sample(members, limit)
        nonmembers = nonmembers if len(nonmembers) <= limit else rng.sample(nonmembers, limit)
    return run_mia(
        lm, members, nonmembers, k=k, batch_size=batch_size, max_length=max_length, progress=progress
    )
