"""SAELens interop: write our SAEs in SAELens's on-disk format and read SAELens folders back.

The format is a folder with ``cfg.json`` (``architecture``, ``d_in``, ``d_sae``, ``dtype``, ``device``,
``apply_b_dec_to_input``, ``normalize_activations``, ``metadata`` and per-architecture fields) and
``sae_weights.safetensors`` (``W_enc [d_in, d_sae]``, ``b_enc``, ``W_dec [d_sae, d_in]``, ``b_dec`` and, for
``jumprelu``, ``threshold [d_sae]``). Our parameters use the same layout, so the mapping is exact:

==================  ============  ==========================================================
ours                SAELens       inference rule on both sides
==================  ============  ==========================================================
relu                standard      ReLU(pre)
topk                topk (k)      ReLU(top-k(pre)), rescale_acts_by_decoder_norm = false
batchtopk / m.c.    jumprelu      pre * 1[pre > theta], theta the learned global threshold
feature_choice      jumprelu      pre * 1[pre > theta_f], per-latent learned thresholds
==================  ============  ==========================================================

Loading maps back (a ``jumprelu`` with a constant threshold becomes ``batchtopk``, otherwise
``feature_choice``), folding SAELens options that we do not carry as flags into the weights:
``apply_b_dec_to_input = false`` (``b_enc += b_dec W_enc``) and ``rescale_acts_by_decoder_norm = true``
(decoder norms folded into the encoder, as SAELens's own fold does).
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import WorkbenchError
from .base import SAEConfig, SparseAutoencoder, build

_TO_SAELENS = {"relu": "standard", "topk": "topk", "batchtopk": "jumprelu", "feature_choice": "jumprelu"}


def export_saelens(
    sae: SparseAutoencoder, folder: str | Path, *, hook_name: str | None = None, model_name: str | None = None
) -> Path:
    """Write ``sae`` as a SAELens folder (``cfg.json`` + ``sae_weights.safetensors``)."""
    from ..io import save_tensors, write_json

    arch = _TO_SAELENS.get(sae.arch_name)
    if arch is None:
        raise WorkbenchError(f"no SAELens architecture for {sae.arch_name!r}")
    folder = Path(folder)
    weights = {k: getattr(sae, k).detach().float() for k in ("W_enc", "b_enc", "W_dec", "b_dec")}
    cfg = {
        "architecture": arch,
        "d_in": sae.cfg.d_in,
        "d_sae": sae.cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "hook_name": hook_name or sae.cfg.site,
            "model_name": model_name or sae.cfg.model,
            "workbench_arch": sae.arch_name,
        },
    }
    if arch == "topk":
        cfg.update(k=int(sae.cfg.k), rescale_acts_by_decoder_norm=False)
    if arch == "jumprelu":
        weights["threshold"] = sae.threshold.detach().float().expand(sae.cfg.d_sae).clone()
    write_json(folder / "cfg.json", cfg)
    save_tensors(folder / "sae_weights.safetensors", weights)
    return folder


def load_saelens(folder: str | Path, *, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Read a SAELens-format folder (standard, topk, jumprelu) as one of our SAEs, in eval mode."""
    from ..io import load_tensors, read_json

    folder = Path(folder)
    cfg = read_json(folder / "cfg.json")
    w = {k: v.float() for k, v in load_tensors(folder / "sae_weights.safetensors").items()}
    arch = cfg.get("architecture", "standard")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise WorkbenchError(
            f"{folder}: normalize_activations={cfg['normalize_activations']!r} is not supported; "
            "fold the normalisation into the weights first"
        )
    if not cfg.get("apply_b_dec_to_input", True):
        w["b_enc"] = w["b_enc"] + w["b_dec"] @ w["W_enc"]
    if arch == "topk" and cfg.get("rescale_acts_by_decoder_norm", False):
        norms = w["W_dec"].norm(dim=-1).clamp_min(1e-8)
        w["W_enc"], w["b_enc"], w["W_dec"] = (
            w["W_enc"] * norms,
            w["b_enc"] * norms,
            w["W_dec"] / norms[:, None],
        )
    meta = cfg.get("metadata") or {}
    common = dict(
        d_in=int(cfg["d_in"]),
        d_sae=int(cfg["d_sae"]),
        site=meta.get("hook_name"),
        model=meta.get("model_name"),
    )
    if arch == "standard":
        ours = SAEConfig(arch="relu", **common)
    elif arch == "topk":
        ours = SAEConfig(arch="topk", k=int(cfg["k"]), **common)
    elif arch == "jumprelu":
        thr = w.pop("threshold")
        if bool((thr < 0).any()):
            raise WorkbenchError(f"{folder}: negative JumpReLU thresholds are not representable here")
        name = "batchtopk" if bool((thr == thr[0]).all()) else "feature_choice"
        ours = SAEConfig(arch=name, k=min(float(cfg.get("k", 1)), float(cfg["d_sae"])), **common)
        w["threshold"] = thr[0].clone() if name == "batchtopk" else thr
    else:
        raise WorkbenchError(
            f"{folder}: SAELens architecture {arch!r} is not supported; supported: standard, topk, jumprelu"
        )
    sae = build(ours)
    state = sae.state_dict()
    state.update(w)
    if "threshold_init" in state:
        state["threshold_init"] = torch.ones((), dtype=torch.bool)
    sae.load_state_dict(state)
    return sae.to(device).eval()


def load(folder: str | Path, *, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Load an SAE saved by :meth:`SparseAutoencoder.save` (or a SAELens folder: :func:`load_saelens`)."""
    from ..config import from_dict
    from ..io import load_tensors, read_json

    folder = Path(folder)
    if (folder / "sae_weights.safetensors").is_file() and not (folder / "sae.safetensors").is_file():
        return load_saelens(folder, device=device)
    if not (folder / "sae.safetensors").is_file():
        raise WorkbenchError(f"{folder}: no sae.safetensors or sae_weights.safetensors; pass an SAE folder")
    sae = build(from_dict(SAEConfig, read_json(folder / "cfg.json"), where=str(folder / "cfg.json")))
    sae.load_state_dict(load_tensors(folder / "sae.safetensors"))
    return sae.to(device).eval()
