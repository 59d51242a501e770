"""``sae``: a TopK SAE on the most-mediating layer of the starting model, and the feature-level view of
forgetting — which features lose their activation on forget prompts after each unlearning method, and
which keep it on retain prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...config import to_dict

NAME = "sae"
AFTER = ("trace", "unlearn")


def inputs(cfg: Any) -> dict:
    """What the stage's hash covers."""
    return to_dict(cfg.sae)


def mean_feature_acts(lm: Any, sae: Any, site: str, texts: list[str], batch_size: int = 16) -> Any:
    """Mean SAE activation of every feature over the real (non-pad, non-BOS) tokens of ``texts``."""
    import torch

    total = torch.zeros(sae.cfg.d_sae)
    count = 0
    with torch.no_grad():
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
    from ...data import read_semeval

    return [r.input + " " + r.output for r in read_semeval(data, splits=(split,))][:limit]


def _train_sae(ctx: Any, lm: Any, corpus: str, model: str, site: str, folder: Path) -> tuple[Any, Any, Any]:
    """Collect activations at ``site``, train the TopK SAE; returns (sae, store, reconstruction metrics)."""
    from ... import sae as S

    s, seed = ctx.cfg.sae, ctx.cfg.seed
    store = S.collect(
        lm, corpus, folder / "acts", S.CollectConfig(site=site, max_tokens=s.max_tokens), progress=True
    )
    sae = S.build(
        S.SAEConfig(arch="topk", d_in=store.d, d_sae=s.expansion * store.d, k=s.k, site=site, model=model)
    )
    S.train(
        sae,
        store.batches(s.batch_tokens, seed=seed),
        S.TrainConfig(steps=s.steps, seed=seed),
        out=folder / "sae",
    )
    recon = S.reconstruction_metrics(
        sae, store.batches(s.batch_tokens, seed=seed + 1, loop=False), max_tokens=50_000
    )
    return sae, store, recon


def run(ctx: Any, folder: Path, res: dict) -> dict:
    """Train the SAE, then compare feature activations of the starting and the unlearned models."""
    import torch

    from ...io import save_tensors, write_json

    if not ctx.cfg.sae.enabled:
        return {"skipped": True}
    o = res["organism"].summary
    site = f"layers.{res['trace'].summary['peak_layer'].get('mlp', 0)}"
    lm = ctx.load(o["model"])
    sae, store, recon = _train_sae(ctx, lm, o["corpus"], o["model"], site, folder)
    forget, retain = _prompts(o["data"], "forget"), _prompts(o["data"], "retain")
    base_f, base_r = mean_feature_acts(lm, sae, site, forget), mean_feature_acts(lm, sae, site, retain)
    # forget-specific features: most active on forget prompts relative to retain prompts, and vice versa
    n = ctx.cfg.sae.top_features
    f_ids, r_ids = torch.topk(base_f - base_r, n).indices, torch.topk(base_r - base_f, n).indices
    rows = []
    tensors = {"base_forget": base_f, "base_retain": base_r, "forget_ids": f_ids, "retain_ids": r_ids}
    for method, run_info in res["unlearn"].summary["runs"].items():
        ul = ctx.load(run_info["model"])
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
    plot_features([r["method"] for r in rows], tensors, f_ids, r_ids, folder / "features.png")
    summary = {
        "site": site,
        "d_sae": sae.cfg.d_sae,
        "k": ctx.cfg.sae.k,
        "tokens": store.n_tokens,
        "fvu": float(recon.fvu),
        "l0": float(recon.l0),
        "dead_fraction": float(recon.dead_frac),
        "rows": rows,
        "figure": str(folder / "features.png"),
    }
    write_json(folder / "summary.json", summary)
    return summary


def plot_features(methods: list[str], tensors: dict, f_ids: Any, r_ids: Any, path: Path) -> Path:
    """Per method and feature: activation after unlearning relative to before (forget and retain sides)."""
    import torch

    from ...reporting.plots import save_figure, subplots

    fig, axes = subplots(1, 2, figsize=(11, 0.45 * len(methods) + 1.8))
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
    return save_figure(fig, path)
