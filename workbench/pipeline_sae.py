"""The pipeline's SAE stage: a TopK SAE on the most-mediating layer of the starting model, and the
feature-level view of forgetting — which features lose their activation on forget prompts after each
unlearning method, and which keep it on retain prompts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from .io import save_tensors, write_json

log = logging.getLogger(__name__)


@torch.no_grad()
def mean_feature_acts(lm: Any, sae: Any, site: str, texts: list[str], batch_size: int = 16) -> torch.Tensor:
    """Mean SAE activation of every feature over the real (non-pad, non-BOS) tokens of ``texts``."""
    total = torch.zeros(sae.cfg.d_sae)
    count = 0
    for i in range(0, len(texts), batch_size):
        enc = lm.tokenize(texts[i : i + batch_size], truncation=True, max_length=256)
        with lm.hooks() as h:
            cap = h.capture(site)
            lm.model(**enc)
        mask = enc["attention_mask"].bool().clone()
        bos = lm.tokenizer.bos_token_id
        if bos is not None:
            mask &= enc["input_ids"] != bos
        x = cap.value[mask].to(sae.W_enc.dtype)
        total += sae.encode(x).sum(0).cpu()
        count += int(mask.sum())
    return total / max(count, 1)


def _prompts(data: str, split: str, limit: int = 64) -> list[str]:
    from .data import read_semeval

    recs = read_semeval(data, splits=(split,))
    return [r.input + " " + r.output for r in recs][:limit]


def feature_view(cfg: Any, res: dict, folder: Path) -> dict:
    """Train the SAE, then compare feature activations of the starting and the unlearned models."""
    from . import sae as S
    from .pipeline import load_model

    o = res["organism"].summary
    layer = res["trace"].summary["peak_layer"].get("mlp", 0)
    site = f"layers.{layer}"
    lm = load_model(cfg, o["model"])
    s = cfg.sae
    store = S.collect(
        lm, o["corpus"], folder / "acts", S.CollectConfig(site=site, max_tokens=s.max_tokens), progress=True
    )
    sae = S.build(
        S.SAEConfig(
            arch="topk", d_in=store.d, d_sae=s.expansion * store.d, k=s.k, site=site, model=o["model"]
        )
    )
    S.train(
        sae,
        store.batches(s.batch_tokens, seed=cfg.seed),
        S.TrainConfig(steps=s.steps, seed=cfg.seed),
        out=folder / "sae",
    )
    recon = S.reconstruction_metrics(
        sae, store.batches(s.batch_tokens, seed=cfg.seed + 1, loop=False), max_tokens=50_000
    )
    forget, retain = _prompts(o["data"], "forget"), _prompts(o["data"], "retain")
    base_f, base_r = mean_feature_acts(lm, sae, site, forget), mean_feature_acts(lm, sae, site, retain)
    # forget-specific features: most active on forget prompts relative to retain prompts, and vice versa
    n = s.top_features
    f_ids = torch.topk(base_f - base_r, n).indices
    r_ids = torch.topk(base_r - base_f, n).indices
    rows, tensors = (
        [],
        {"base_forget": base_f, "base_retain": base_r, "forget_ids": f_ids, "retain_ids": r_ids},
    )
    for method, run in res["unlearn"].summary["runs"].items():
        ul = load_model(cfg, run["model"])
        af, ar = mean_feature_acts(ul, sae, site, forget), mean_feature_acts(ul, sae, site, retain)
        tensors[f"{method}_forget"], tensors[f"{method}_retain"] = af, ar
        keep_f = (af[f_ids] / base_f[f_ids].clamp_min(1e-8)).clamp(max=5.0)
        keep_r = (ar[r_ids] / base_r[r_ids].clamp_min(1e-8)).clamp(max=5.0)
        rows.append(
            {
                "method": method,
                "forget_features_kept": float(keep_f.mean()),
                "retain_features_kept": float(keep_r.mean()),
                "forget_features_silenced": int((keep_f < 0.5).sum()),
                "of": n,
            }
        )
    save_tensors(folder / "feature_view.safetensors", tensors)
    _plot(rows, tensors, f_ids, r_ids, folder / "features.png")
    summary = {
        "site": site,
        "d_sae": sae.cfg.d_sae,
        "k": s.k,
        "tokens": store.n_tokens,
        "fvu": float(recon.fvu),
        "l0": float(recon.l0),
        "dead_fraction": float(recon.dead_frac),
        "rows": rows,
        "figure": str(folder / "features.png"),
    }
    write_json(folder / "summary.json", summary)
    return summary


def _plot(rows: list[dict], tensors: dict, f_ids: torch.Tensor, r_ids: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [r["method"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.45 * len(methods) + 1.8), squeeze=False)
    for ax, ids, side, title in (
        (axes[0][0], f_ids, "forget", "forget-specific features on forget prompts"),
        (axes[0][1], r_ids, "retain", "retain-specific features on retain prompts"),
    ):
        base = tensors[f"base_{side}"][ids].clamp_min(1e-8)
        grid = torch.stack([(tensors[f"{m}_{side}"][ids] / base).clamp(max=2.0) for m in methods])
        im = ax.imshow(grid.numpy(), cmap="RdBu", vmin=0, vmax=2, aspect="auto")
        ax.set_yticks(range(len(methods)), methods)
        ax.set_xticks(range(len(ids)), [str(int(i)) for i in ids], rotation=90, fontsize=7)
        ax.set_xlabel("SAE feature")
        ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="activation after / before (1 = kept)")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
