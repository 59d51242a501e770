"""The researcher's API: which features fire on a prompt, and ablating or steering one feature in the
model, all through the hook engine::

    pf = sae.encode_prompt(lm, model, "The Eiffel Tower is in")
    pf.table()                                      # token -> top features (id, activation)
    with lm.hooks() as h:
        sae.ablate_feature(h, model, 123)           # remove feature 123's contribution at its site
        sae.steer_feature(h, model, 77, scale=8.0)  # add 8 * its decoder direction
        lm.model(**lm.tokenize("..."))
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from ..errors import WorkbenchError
from .base import SparseAutoencoder


@dataclasses.dataclass
class PromptFeatures:
    """Active features of each token of one prompt."""

    tokens: list[str]
    features: list[list[tuple[int, float]]]
    """Per token: (feature id, activation), strongest first."""
    acts: torch.Tensor
    """Dense ``[T, d_sae]`` activations."""

    def table(self) -> str:
        """A plain-text table, one token per line."""
        lines = []
        for tok, feats in zip(self.tokens, self.features, strict=True):
            shown = ", ".join(f"{i}:{v:.2f}" for i, v in feats) or "-"
            lines.append(f"{tok!r:>16}  {shown}")
        return "\n".join(lines)


def _site(sae: SparseAutoencoder, site: str | None) -> str:
    site = site or sae.cfg.site
    if site is None:
        raise WorkbenchError("the SAE records no site; pass site=")
    return site


@torch.no_grad()
def encode_prompt(
    lm: Any, sae: SparseAutoencoder, prompt: str, *, site: str | None = None, top: int = 8
) -> PromptFeatures:
    """Run ``prompt``, read the SAE's site through ``h.capture`` and encode every token."""
    site = _site(sae, site)
    enc = lm.tokenize(prompt)
    with lm.hooks() as h:
        cap = h.capture(site)
        lm.model(**enc)
    x = cap.value[0]
    acts = sae.eval().encode(x.to(sae.W_enc.device, sae.W_enc.dtype)).cpu()
    feats = []
    for row in acts:
        nz = row.nonzero().flatten()
        order = row[nz].argsort(descending=True)[:top]
        feats.append([(int(nz[j]), float(row[nz[j]])) for j in order])
    tokens = lm.tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    return PromptFeatures(tokens, feats, acts)


def _direction(sae: SparseAutoencoder, feature: int) -> torch.Tensor:
    if not 0 <= feature < sae.cfg.d_sae:
        raise WorkbenchError(f"feature {feature} out of range [0, {sae.cfg.d_sae})")
    return sae.W_dec[feature].detach()


def ablate_feature(
    h: Any,
    sae: SparseAutoencoder,
    feature: int,
    *,
    site: str | None = None,
    rows: Any = None,
    positions: Any = None,
) -> None:
    """Register on hooks ``h`` an edit that subtracts ``a_f(x) * W_dec[f]`` from the site's activation."""
    site = _site(sae, site)
    direction = _direction(sae, feature)
    sae.eval()

    def fn(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).to(sae.W_enc.dtype)
        with torch.no_grad():
            a = sae.encode(flat)[:, feature]
        return (flat - a[:, None] * direction.to(flat)).reshape(x.shape).to(x.dtype)

    h.edit(site, fn, rows=rows, positions=positions)


def steer_feature(
    h: Any,
    sae: SparseAutoencoder,
    feature: int,
    scale: float,
    *,
    site: str | None = None,
    rows: Any = None,
    positions: Any = None,
) -> None:
    """Register on hooks ``h`` the addition of ``scale * W_dec[f]`` at the SAE's site."""
    h.add(_site(sae, site), _direction(sae, feature), scale=scale, rows=rows, positions=positions)
