"""The ``workbench quantize`` job: quantize a model, report what it cost, optionally measure relapse.

:class:`QuantizeRun` is the job's one config. Method options (``bits``, ``group_size``, ``calib``, ...)
are defined once, in each method's options dataclass in its backend file; the CLI offers the union of
them as flags (:func:`option_fields`) and the method refuses those it does not take.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError


@dataclasses.dataclass
class QuantizeRun:
    """``workbench quantize``: methods bnb-nf4, bnb-fp4, bnb-int8, torchao-int8wo, torchao-int8da,
    torchao-int4wo, rtn, gptq (rtn-N / gptq-N set the bits). Writes metrics.json, weight_error.png and
    config.yaml into out; with eval also relapse.json (SemEval before and after)."""

    model: str
    """model folder (or hub id)"""
    method: str
    """quantization method, e.g. bnb-nf4, rtn-4, gptq"""
    out: str
    """run folder"""
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    """method options (only those the method takes), e.g. {bits: 4, group_size: 64}"""
    heldout: str | None = None
    """held-out text for KL / perplexity (default: the calib option, else <model>/corpus)"""
    seq_len: int = 128
    """tokens per calibration / held-out chunk"""
    n_heldout: int = 32
    """held-out chunks"""
    seed: int = 0
    """seed of the chunk sampling"""
    eval: bool = False
    """run the SemEval metrics before and after quantization (the relapse check)"""
    data: str | None = None
    """SemEval data folder for eval (default: the model folder)"""
    part: str | None = None
    """train | validation files only"""
    limit: int | None = None
    """records per split × task × kind (seeded)"""
    max_new_tokens: int = 64
    """greedy generation length of the relapse check"""
    save_model: bool = False
    """also save the quantized model to <out>/model"""


def option_fields() -> dict[str, tuple[Any, str, list[str]]]:
    """Every method option: name -> (type, docstring, the methods that take it)."""
    from ..config import option_union
    from .registry import METHODS, method_names

    return option_union({name: METHODS[name].options for name in method_names()})


def run_quantize(cfg: QuantizeRun) -> dict[str, Any]:
    """Quantize, report, optionally check relapse; returns the report, the relapse result and the folder.

    The model and the options are checked before the run folder is created.
    """
    from ..config import dump_config
    from ..io import run_dir, write_json
    from ..models import load
    from . import quant_info, quantize
    from .registry import resolve_method
    from .report import quant_report

    options = dict(cfg.options)
    if cfg.method.startswith("gptq"):  # calibration chunks as long as the report's, from the run's seed
        options.setdefault("seq_len", cfg.seq_len)
        options.setdefault("seed", cfg.seed)
    resolve_method(cfg.method, options)  # unknown method or option: fail before anything is made
    data = cfg.data or cfg.model
    if cfg.eval and not Path(data).exists():
        raise WorkbenchError(f"data {data!r} does not exist; pass the SemEval data folder (or the organism)")
    lm = load(cfg.model)
    q = quantize(lm, cfg.method, **options)
    out = run_dir(cfg.out)
    dump_config(cfg, out / "config.yaml")
    info = quant_info(q)
    skip = int(info.options.get("n_samples", 64)) if info.method == "gptq" else 64
    report = quant_report(
        lm,
        q,
        texts=cfg.heldout or options.get("calib"),
        seq_len=cfg.seq_len,
        n_heldout=cfg.n_heldout,
        skip_first=skip,
        seed=cfg.seed,
    )
    report.save(out)
    result: dict[str, Any] = {"report": report, "relapse": None, "out": out}
    if cfg.eval:
        from .relapse import relapse

        res = relapse(
            lm, q, data, part=cfg.part, limit=cfg.limit, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed
        )
        write_json(out / "relapse.json", res.metrics())
        result["relapse"] = res
    if cfg.save_model:
        q.model.save_pretrained(out / "model", safe_serialization=True)
        q.tokenizer.save_pretrained(out / "model")
    return result
