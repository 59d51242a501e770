"""The quantization report: what a quantizer cost, layer by layer and at the output.

- per Linear: relative Frobenius weight error ``||Ŵ - W||_F / ||W||_F`` (Ŵ: the weight the quantized
  module computes with, dequantized from bitsandbytes / torchao storage where needed);
- output KL(p_fp || p_q) per token, against the full-precision model, on held-out text;
- perplexity of both models on the same text, and its delta;
- model size before and after (stored, and bit-packed).

:meth:`QuantReport.save` writes ``metrics.json`` and plots into a run folder; :meth:`QuantReport.table`
is the printed table.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import torch

from ..errors import WorkbenchError
from ..io import run_dir, write_json
from ._common import dequantized_weight, param_bytes, quantizable_linears
from .calib import TextSource, default_source, max_seq_len, read_texts, token_chunks


@dataclasses.dataclass
class LayerError:
    """Relative Frobenius weight error of one Linear."""

    name: str
    rel_error: float


@dataclasses.dataclass
class QuantReport:
    """Everything the report measured (see the module docstring). Sizes in bytes."""

    method: str
    options: dict[str, Any]
    layers: list[LayerError]
    kl: float
    ppl_fp: float
    ppl_q: float
    fp_bytes: int
    stored_bytes: int
    packed_bytes: int
    n_tokens: int

    @property
    def ppl_delta(self) -> float:
        """Perplexity after minus before."""
        return self.ppl_q - self.ppl_fp

    @property
    def mean_weight_error(self) -> float:
        """Mean relative weight error over the quantized layers."""
        return sum(e.rel_error for e in self.layers) / max(1, len(self.layers))

    def summary(self) -> dict[str, Any]:
        """The headline numbers as a flat dict (for metrics.json and tables)."""
        return {
            "method": self.method,
            "kl": self.kl,
            "ppl_fp": self.ppl_fp,
            "ppl_q": self.ppl_q,
            "ppl_delta": self.ppl_delta,
            "mean_weight_error": self.mean_weight_error,
            "fp_bytes": self.fp_bytes,
            "stored_bytes": self.stored_bytes,
            "packed_bytes": self.packed_bytes,
            "n_tokens": self.n_tokens,
        }

    def table(self, top: int = 8) -> str:
        """A printable table: headline numbers, then the layers with the largest weight error."""
        mb = 1024**2
        lines = [
            f"method            {self.method}",
            f"size              {self.fp_bytes / mb:.2f} MiB -> {self.stored_bytes / mb:.2f} MiB stored, "
            f"{self.packed_bytes / mb:.2f} MiB packed ({self.fp_bytes / max(1, self.packed_bytes):.2f}x)",
            f"output KL         {self.kl:.5f} nats/token on {self.n_tokens} held-out tokens",
            f"perplexity        {self.ppl_fp:.3f} -> {self.ppl_q:.3f} (delta {self.ppl_delta:+.3f})",
            f"weight error      mean {self.mean_weight_error:.4f} over {len(self.layers)} layers",
            "",
            f"{'layer':48s} {'rel. weight error':>18s}",
        ]
        for e in sorted(self.layers, key=lambda e: -e.rel_error)[:top]:
            lines.append(f"{e.name:48s} {e.rel_error:18.4f}")
        return "\n".join(lines)

    def save(self, out: str | Path) -> Path:
        """Write ``metrics.json`` and ``weight_error.png`` into the run folder ``out``."""
        folder = run_dir(out)
        write_json(
            folder / "metrics.json",
            {
                **self.summary(),
                "options": self.options,
                "layers": [dataclasses.asdict(e) for e in self.layers],
            },
        )
        plot_weight_errors(self, folder / "weight_error.png")
        return folder


def weight_errors(fp_lm: Any, q_lm: Any, names: list[str] | None = None) -> list[LayerError]:
    """Relative Frobenius error of every quantizable Linear of ``q_lm`` against ``fp_lm``."""
    fp = dict(fp_lm.model.named_modules())
    out = []
    for name, mod in quantizable_linears(q_lm.model).items():
        if names is not None and name not in names:
            continue
        if name not in fp:
            raise WorkbenchError(f"layer {name!r} of the quantized model is missing from the reference model")
        w0 = fp[name].weight.detach().float()
        w = dequantized_weight(mod).to(w0.device).reshape(w0.shape)
        out.append(LayerError(name, float((w - w0).norm() / w0.norm().clamp_min(1e-12))))
    return out


@torch.no_grad()
def output_stats(
    fp_lm: Any, q_lm: Any, chunks: torch.Tensor, batch_size: int = 8
) -> tuple[float, float, float, int]:
    """(mean KL(p_fp||p_q) per token, mean NLL fp, mean NLL q, tokens) over ``chunks`` [n, T]."""
    kl_sum = nll_fp = nll_q = 0.0
    n_tok = n_pred = 0
    for s in range(0, len(chunks), batch_size):
        ids = chunks[s : s + batch_size]
        lp = torch.log_softmax(fp_lm.model(input_ids=ids.to(fp_lm.device)).logits.float().cpu(), -1)
        lq = torch.log_softmax(q_lm.model(input_ids=ids.to(q_lm.device)).logits.float().cpu(), -1)
        kl_sum += float((lp.exp() * (lp - lq)).sum(-1).sum())
        n_tok += ids.numel()
        tgt = ids[:, 1:, None]
        nll_fp -= float(lp[:, :-1].gather(-1, tgt).sum())
        nll_q -= float(lq[:, :-1].gather(-1, tgt).sum())
        n_pred += tgt.numel()
    return kl_sum / n_tok, nll_fp / n_pred, nll_q / n_pred, n_tok


def quant_report(
    fp_lm: Any,
    q_lm: Any,
    *,
    texts: TextSource | None = None,
    seq_len: int = 128,
    n_heldout: int = 32,
    skip_first: int = 64,
    seed: int = 0,
    batch_size: int = 8,
) -> QuantReport:
    """Compare ``q_lm`` with ``fp_lm`` (see the module docstring).

    Held-out text: chunks of ``texts`` (default: the organism corpus next to ``fp_lm``) after the first
    ``skip_first`` of the seeded shuffle, which are the ones GPTQ calibrates on with the same seed and
    ``seq_len``, so the two sets are disjoint when the text is long enough.
    """
    from .registry import quant_info

    source = texts if texts is not None else default_source(fp_lm)
    chunks = token_chunks(
        fp_lm.tokenizer,
        read_texts(source),
        seq_len=max_seq_len(fp_lm, seq_len),
        n_calib=skip_first,
        n_heldout=n_heldout,
        seed=seed,
    ).heldout
    if len(chunks) == 0:
        raise WorkbenchError(
            "no held-out text left after the calibration chunks; pass more text or lower seq_len"
        )
    kl, nll_fp, nll_q, n_tok = output_stats(fp_lm, q_lm, chunks, batch_size)
    info = quant_info(q_lm)
    return QuantReport(
        method=info.method if info else "?",
        options=info.options if info else {},
        layers=weight_errors(fp_lm, q_lm, info.quantized_layers if info else None),
        kl=kl,
        ppl_fp=math.exp(nll_fp),
        ppl_q=math.exp(nll_q),
        fp_bytes=info.fp_bytes if info else param_bytes(fp_lm.model),
        stored_bytes=info.stored_bytes if info else param_bytes(q_lm.model),
        packed_bytes=info.packed_bytes if info else param_bytes(q_lm.model),
        n_tokens=n_tok,
    )


def plot_weight_errors(report: QuantReport, path: str | Path) -> Path:
    """Bar chart of the per-layer relative weight error, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    names = [e.name for e in report.layers]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * len(names)), 4.0))
    ax.bar(range(len(names)), [e.rel_error for e in report.layers], color="#4c72b0")
    ax.set_xticks(
        range(len(names)), [n.replace("model.layers.", "L") for n in names], rotation=90, fontsize=7
    )
    ax.set_ylabel("relative Frobenius error")
    ax.set_title(
        f"{report.method}: weight error per layer (KL {report.kl:.4f}, ppl Δ {report.ppl_delta:+.3f})"
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return Path(path)
