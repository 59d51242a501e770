"""The steps of ``bench_scale.py``, each run in a fresh worker process (see that script for the table).

Every step builds its model from a published configuration with random weights (no download), then
runs one piece of the workbench and returns its measurements: seconds, peak memory, the FLOPs it ran
and how many forwards it made. On the CPU the peak is the process's peak RSS (``VmHWM``); the counter is
reset once the model is built (``/proc/self/clear_refs``), so a step's peak is the resident model plus
what the step itself allocated. On CUDA it is ``torch.cuda.max_memory_allocated`` after the build.
"""

from __future__ import annotations

import contextlib
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from _scale_models import (
    FULL,
    OLMO2_1B,
    OLMOE_1B_7B,
    TINY,
    Counter,
    Meter,
    Opts,
    Spec,
    build,
    count,
    hf_config,
    mapped_rss,
    n_params,
    size,
    sync,
)

__all__ = ["FULL", "OLMO2_1B", "OLMOE_1B_7B", "TINY", "Spec", "hf_config", "n_params"]


def _ids(lm: Any, n: int, rows: int = 1, seed: int = 0) -> Any:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, len(lm.tokenizer), (rows, n), generator=gen).to(lm.device)


def texts(n: int, words: int, seed: int = 0) -> list[str]:
    """``n`` pseudo-sentences of ``words`` words drawn from the tiny tokenizer's training text."""
    from workbench.models.tiny import _TEXT

    vocab = _TEXT.split()
    rng = random.Random(seed)
    return [" ".join(rng.choice(vocab) for _ in range(words)) for _ in range(n)]


# -- steps -----------------------------------------------------------------------------------------------
def step_load(lm: Any, opts: Opts, ctx: dict) -> dict:
    """A capture at every canonical site in one forward."""
    import torch

    sites = lm.sites()
    with lm.hooks() as h, torch.no_grad():
        caps = {s: h.capture(s) for s in sites}
        lm.model(input_ids=_ids(lm, opts.sizes["capture_tokens"]))
    bad = [s for s, c in caps.items() if not torch.isfinite(c.value.float()).all()]
    if bad:
        raise RuntimeError(f"non-finite captures at {bad[:3]}")
    kept = sum(c.value.numel() * c.value.element_size() for c in caps.values())
    return {"note": f"build {ctx['build_s']:.1f} s; {len(sites)} sites, {size(kept)} captured"}


def step_patch(lm: Any, opts: Opts, ctx: dict) -> dict:
    """A resid_pre patching grid (every layer x 8 positions) on an 8-token prompt pair."""
    from workbench.tracing import patch

    clean = _ids(lm, 8, seed=1)[0]
    corrupted = clean.clone()
    corrupted[2] = (corrupted[2] + 1 - 3) % (len(lm.tokenizer) - 3) + 3  # one token swapped
    res = patch(lm, clean, corrupted, sites=["resid_pre"], answers=(5, 6), progress=False)
    grid = res.scores["resid_pre"]
    if tuple(grid.shape) != (lm.n_layers, 8) or not grid.isfinite().all():
        raise RuntimeError(f"bad patching grid {tuple(grid.shape)}")
    return {"note": f"{grid.numel()} cells"}


def step_trace(lm: Any, opts: Opts, ctx: dict) -> dict:
    """One fact, causal tracing of the hidden kind at 2 noise samples."""
    from workbench.tracing import causal_trace

    fact = {"prompt": "Mira Okafor was born in the city of", "subject": "Mira Okafor"}
    res = causal_trace(lm, [fact], kinds=["hidden"], samples=2, progress=False)
    scores = res.facts[0].scores["hidden"]
    n_tok = len(res.facts[0].input_ids)
    if not scores.isfinite().all():
        raise RuntimeError("non-finite trace scores")
    return {"note": f"{n_tok} tokens x {lm.n_layers} layers"}


def step_sae(lm: Any, opts: Opts, ctx: dict) -> dict:
    """Collect SAE activations at the middle layer's residual stream."""
    from workbench.io import write_jsonl
    from workbench.sae.activations import CollectConfig, collect

    work = Path(opts.workdir)
    src = work / "sae_texts.jsonl"
    write_jsonl(src, [{"text": t} for t in texts(400, 80)])
    want = opts.sizes["sae_tokens"]
    site = f"layers.{lm.n_layers // 2}"
    cfg = CollectConfig(site=site, max_tokens=want, ctx_len=128, batch_size=16)
    store = collect(lm, src, work / "acts", cfg, progress=False, overwrite=True)
    if store.n_tokens != want:
        raise RuntimeError(f"collected {store.n_tokens} tokens, wanted {want}")
    return {"note": f"{store.n_tokens} tokens at {site} (d {store.d})"}


def constrained_layers(n_layers: int) -> list[int]:
    """Layers 0-5 of 16 (the seed's OLMo choice), scaled to shallower models: the first ceil(6/16 L)."""
    return list(range(max(1, math.ceil(6 * n_layers / 16))))


def _semeval(folder: Path) -> None:
    from workbench.io import write_jsonl

    for split in ("forget", "retain"):
        seed = 1 if split == "forget" else 2
        qs, ans = texts(32, 12, seed=seed), texts(32, 40, seed=10 + seed)
        rows = [
            {"id": f"{split}{i}qa0", "input": f"Question: {q}?\nAnswer:", "output": a, "task": "Task1"}
            for i, (q, a) in enumerate(zip(qs, ans))
        ]
        write_jsonl(folder / f"{split}.jsonl", rows)


def unlearn_setup(lm: Any, opts: Opts, full: bool) -> Any:
    """The workbench trainer's run (accelerate, AdamW, the ``constrained`` objective), before step 1."""
    from workbench.unlearning import trainer
    from workbench.unlearning.config import DataConfig, SelectConfig, TrainConfig, UnlearnConfig

    data = Path(opts.workdir) / "semeval"
    _semeval(data)
    select = (
        SelectConfig(layers="all", kind="*")
        if full
        else SelectConfig(layers=constrained_layers(lm.n_layers), kind="mlp")
    )
    cfg = UnlearnConfig(
        model=lm.spec,
        out=str(Path(opts.workdir) / "unlearn"),
        method="constrained",
        data=DataConfig(path=str(data), max_length=opts.sizes["train_len"]),
        select=select,
        train=TrainConfig(max_steps=2, batch_size=8, eval_every=0, keep_best=False, progress=False),
        dtype=opts.train_dtype,
    )
    return trainer._setup(cfg, lm)


def step_unlearn(lm: Any, opts: Opts, ctx: dict) -> dict:
    """Two optimizer steps of the trainer (forward, backward, clipping, AdamW, scheduler)."""
    from workbench.unlearning import trainer

    run = ctx["run"]
    batches = trainer._micro_batches(run)
    times, losses = [], []
    for _ in range(2):
        start = time.perf_counter()
        row = trainer._train_step(run, batches)
        sync(opts.device)
        times.append(time.perf_counter() - start)
        losses.append(row["loss"])
    if not all(math.isfinite(x) for x in losses):
        raise RuntimeError(f"non-finite loss {losses}")
    sel = run.selection
    rows = run.data.forget + run.data.retain
    tokens = run.cfg.train.batch_size * sum(len(e.input_ids) for e in rows) / len(rows)
    return {
        "note": f"{count(sel.trainable)} of {count(sel.total)} params train; "
        f"step {times[0]:.1f} s, {times[1]:.1f} s; ~{tokens:.0f} tokens/batch",
        "per_step_s": sum(times) / len(times),
        "trainable": sel.trainable,
    }


def step_quant(lm: Any, opts: Opts, ctx: dict, method: str) -> dict:
    """Quantize with bitsandbytes through ``wb.quantize`` and run one forward."""
    import torch

    from workbench.quantization import quant_info, quantize

    kw = {"device": opts.device}
    if method == "bnb-nf4":
        kw["compute_dtype"] = opts.dtype
    q = quantize(lm, method, **kw)
    info = quant_info(q)
    with torch.no_grad():
        logits = q.model(input_ids=_ids(q, opts.sizes["quant_tokens"])).logits
    if not torch.isfinite(logits.float()).all():
        raise RuntimeError("non-finite logits from the quantized model")
    note = f"{len(info.quantized_layers)} Linears quantized; weights {size(info.fp_bytes)} -> {size(info.stored_bytes)}"
    if opts.device == "cpu":  # the unquantized tensors stay zero-copy views of bnb's mmapped temporary file
        note += f"; {size(mapped_rss(opts.workdir))} of the RSS is pages of bnb's temporary checkpoint"
    return {"note": note}


STEPS = {
    "load+capture": step_load,
    "patch resid": step_patch,
    "trace hidden": step_trace,
    "sae collect": step_sae,
    "unlearn constrained": step_unlearn,
    "unlearn full": step_unlearn,
    "bnb nf4+forward": lambda lm, o, c: step_quant(lm, o, c, "bnb-nf4"),
    "bnb int8+forward": lambda lm, o, c: step_quant(lm, o, c, "bnb-int8"),
}


def run_step(step: str, opts: Opts) -> dict:
    """Build the model, run one step under the meters; returns its measurements."""
    import torch

    if opts.device == "cpu":
        torch.set_num_threads(opts.threads)
    training = step.startswith("unlearn")
    dtype = opts.train_dtype if training else opts.dtype
    meter = Meter(opts.device)
    lm, build_s = build(opts, dtype)
    ctx: dict = {"build_s": build_s}
    if training:
        ctx["run"] = unlearn_setup(lm, opts, full=step.endswith("full"))
    model_bytes = meter.now()
    if step != "load+capture":
        meter.reset()
    start = time.perf_counter()
    with Counter(lm, opts.flops) as counter, _quiet():
        if opts.fail:
            raise RuntimeError(f"failure injected into {step!r}")
        out = STEPS[step](lm, opts, ctx)
    sync(opts.device)
    seconds = time.perf_counter() - start
    if step == "load+capture":
        seconds += build_s
    return {
        "step": step,
        "dtype": dtype,
        "seconds": seconds,
        "peak_bytes": meter.peak(),
        "model_bytes": model_bytes,
        "peak_reset": meter.reset_ok,
        "flops": counter.flops,
        "forwards": counter.forwards,
        "training": training,
        "params": sum(p.numel() for p in lm.model.parameters()),
        **out,
    }


@contextlib.contextmanager
def _quiet():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def new_workdir(root: str | None = None) -> str:
    """A scratch folder for one step (SAE store, SemEval files, bnb's temporary checkpoint)."""
    return tempfile.mkdtemp(prefix="bench-scale-", dir=root)


def worker(conn: Any, step: str, opts: Opts) -> None:
    """Entry point of a worker process: run ``step`` and send back its row (or the error)."""
    import os
    import traceback

    os.environ["WORKBENCH_CACHE"] = opts.workdir  # bnb's temporary checkpoint lands in the step's folder
    try:
        row = {"ok": True, **run_step(step, opts)}
    except BaseException as err:  # noqa: BLE001 - any failure is a row of the table
        msg = str(err).splitlines()[0] if str(err) else ""
        row = {"ok": False, "step": step, "error": f"{type(err).__name__}: {msg}"[:300],
               "traceback": traceback.format_exc()}  # fmt: skip
    conn.send(row)
    conn.close()
