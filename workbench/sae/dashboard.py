"""A self-contained HTML dashboard per SAE (no scripts, no external assets; opens from disk anywhere).

For each shown feature: its activation density, its top-activating contexts with every token shaded by
the feature's activation, and the tokens its decoder direction promotes most through the unembedding
(``W_dec[f] @ W_U^T``, direct logit attribution ignoring the final norm; only where the site's width is
the model width). The page opens with the SAE's config and the log10 feature-density histogram.
"""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .activations import _Stop, token_mask
from .base import SparseAutoencoder


@dataclasses.dataclass
class FeatureStats:
    """What the dashboard shows for one feature."""

    feature: int
    density: float
    contexts: list[tuple[float, list[str], list[float]]]
    """(max activation, tokens of the window, activation per token)."""
    promoted: list[tuple[str, float]]


@torch.no_grad()
def scan(
    sae: SparseAutoencoder,
    lm: Any,
    texts: Sequence[str],
    *,
    site: str | None = None,
    top_k: int = 8,
    batch_size: int = 8,
    ctx_len: int = 128,
    progress: bool = True,
):
    """Encode ``texts``: per-feature densities, top (activation, token index) pairs, and the token table."""
    from tqdm.auto import tqdm

    site = site or sae.cfg.site
    sae.eval()
    docs: list[list[int]] = []
    where: list[tuple[int, int]] = []  # global token -> (doc, position)
    best_val = torch.full((top_k, sae.cfg.d_sae), -1.0)
    best_idx = torch.zeros((top_k, sae.cfg.d_sae), dtype=torch.long)
    fires = torch.zeros(sae.cfg.d_sae)
    acts_all: list[torch.Tensor] = []
    for i in tqdm(range(0, len(texts), batch_size), disable=not progress, desc="dashboard"):
        enc = lm.tokenize(list(texts[i : i + batch_size]), truncation=True, max_length=ctx_len)
        mask = token_mask(lm, enc)
        with lm.hooks() as h:
            cap = h.capture(site)
            h.edit(site, _raise_stop)
            try:
                lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
            except _Stop:
                pass
        acts = sae.encode(cap.value[mask].to(sae.W_enc.device, sae.W_enc.dtype)).cpu()
        base = len(where)
        for r in range(mask.shape[0]):
            docs.append(enc["input_ids"][r][enc["attention_mask"][r].bool()].tolist())
            where.extend((len(docs) - 1, int(p)) for p in mask[r].nonzero().flatten())
        fires += (acts > 0).sum(0)
        vals = torch.cat([best_val, acts])
        idx = torch.cat([best_idx, torch.arange(base, base + len(acts))[:, None].expand_as(acts)])
        top = vals.topk(top_k, dim=0)
        best_val, best_idx = top.values, idx.gather(0, top.indices)
        acts_all.append(acts.to_sparse())
    return fires / max(len(where), 1), best_val, best_idx, docs, where, acts_all


def _raise_stop(x: torch.Tensor) -> torch.Tensor:
    raise _Stop


def dashboard(
    sae: SparseAutoencoder,
    lm: Any,
    texts: Sequence[str],
    out: str | Path,
    *,
    features: Sequence[int] | None = None,
    n_features: int = 24,
    top_k: int = 8,
    window: int = 12,
    site: str | None = None,
    progress: bool = True,
) -> Path:
    """Write ``out`` (an .html file, or a folder that receives ``dashboard.html``); returns its path."""
    from ..io import write_text

    density, best_val, best_idx, docs, where, acts_all = scan(
        sae, lm, texts, site=site, top_k=top_k, progress=progress
    )
    if features is None:
        live = (density > 0).nonzero().flatten()
        features = live[density[live].argsort(descending=True)][:n_features].tolist()
    features = [int(f) for f in features]
    # the shown features' activations on every token, [N, len(features)]
    cols = torch.cat(acts_all).index_select(1, torch.tensor(features, dtype=torch.long)).to_dense()
    row_of = {dp: g for g, dp in enumerate(where)}
    promoted = _promoted(sae, lm)
    stats = []
    for j, f in enumerate(features):
        ctxs = []
        for v, g in zip(best_val[:, f].tolist(), best_idx[:, f].tolist(), strict=True):
            if v <= 0:
                continue
            d, p = where[g]
            lo, hi = max(0, p - window), min(len(docs[d]), p + 4)
            toks = [lm.tokenizer.decode([t]) for t in docs[d][lo:hi]]
            per_tok = [float(cols[row_of[(d, q)], j]) if (d, q) in row_of else 0.0 for q in range(lo, hi)]
            ctxs.append((v, toks, per_tok))
        stats.append(FeatureStats(int(f), float(density[f]), ctxs, promoted(f) if promoted else []))
    out = Path(out)
    path = out if out.suffix == ".html" else out / "dashboard.html"
    write_text(path, render(sae, density, stats))
    return path


def _promoted(sae: SparseAutoencoder, lm: Any):
    emb = lm.model.get_output_embeddings()
    if emb is None or emb.weight.shape[1] != sae.cfg.d_in:
        return None
    w_u = emb.weight.detach().float().cpu()

    def top(f: int, n: int = 10) -> list[tuple[str, float]]:
        logits = w_u @ sae.W_dec[f].detach().float().cpu()
        vals, ids = logits.topk(min(n, len(logits)))
        return [
            (lm.tokenizer.decode([i]), float(v)) for i, v in zip(ids.tolist(), vals.tolist(), strict=True)
        ]

    return top


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
.feat{border:1px solid #ccc;border-radius:6px;padding:.8em;margin:1em 0}
.ctx{font-family:monospace;white-space:pre-wrap;margin:.2em 0;line-height:1.6}
.tok{border-radius:2px;padding:0 1px}.meta{color:#666;font-size:.9em}
table{border-collapse:collapse}td{padding:0 .6em}"""


def render(sae: SparseAutoencoder, density: torch.Tensor, stats: list[FeatureStats]) -> str:
    """The dashboard HTML."""
    from .metrics import log10_hist

    e = html.escape
    cfg = sae.cfg
    head = (
        f"<h1>SAE dashboard: {e(sae.arch_name)} at {e(str(cfg.site))}</h1><p class=meta>model {e(str(cfg.model))}"
        f" &middot; d_in {cfg.d_in} &middot; d_sae {cfg.d_sae} &middot; k {cfg.k} &middot; "
        f"dead on this text {float((density == 0).float().mean()):.1%}</p>"
    )
    edges, counts = log10_hist(density)
    parts = [
        f"<!doctype html><html><head><meta charset=utf-8><title>SAE dashboard</title><style>{_CSS}"
        f"</style></head><body>{head}<h2>Feature density (log10, live features)</h2>",
        _svg_hist(edges, counts),
    ]
    for s in stats:
        parts.append(
            f"<div class=feat id=f{s.feature}><h3>Feature {s.feature}</h3>"
            f"<p class=meta>density {s.density:.3%} (log10 {_log10(s.density)})</p>"
        )
        if s.promoted:
            cells = "".join(f"<td>{e(repr(t))} {v:+.2f}</td>" for t, v in s.promoted)
            parts.append(f"<p>Top promoted tokens (W_dec&middot;W_U):</p><table><tr>{cells}</tr></table>")
        parts.append("<p>Top-activating contexts:</p>")
        for v, toks, acts in s.contexts:
            spans = "".join(
                f"<span class=tok title='{a:.3f}' style='background:rgba(255,110,0,"
                f"{max(0.0, a) / v if v > 0 else 0:.2f})'>{e(t)}</span>"
                for t, a in zip(toks, acts, strict=True)
            )
            parts.append(f"<div class=ctx><span class=meta>{v:.2f}</span> {spans}</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _log10(x: float) -> str:
    import math

    return f"{math.log10(x):.2f}" if x > 0 else "-inf"


def _svg_hist(edges: list[float], counts: list[int], w: int = 600, h: int = 120) -> str:
    peak = max(counts) or 1
    bw = w / len(counts)
    bars = "".join(
        f"<rect x='{i * bw:.1f}' y='{h - c / peak * h:.1f}' width='{bw - 1:.1f}' height='{c / peak * h:.1f}' "
        f"fill='#4a7'><title>{edges[i]:.1f}..{edges[i + 1]:.1f}: {c}</title></rect>"
        for i, c in enumerate(counts)
    )
    return (
        f"<svg width='{w}' height='{h + 16}' xmlns='http://www.w3.org/2000/svg'>{bars}"
        f"<text x='0' y='{h + 14}' font-size='11'>{edges[0]:.0f}</text>"
        f"<text x='{w - 12}' y='{h + 14}' font-size='11'>0</text></svg>"
    )
