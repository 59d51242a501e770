"""The workbench at real OLMo size: time, peak memory and FLOPs of each step, and a one-GPU estimate.

    python analyses/benchmarks/bench_scale.py [--models olmo2,olmoe] [--device cpu|cuda] [--tiny]

Models are built with random weights from the published configurations (transformers' config classes,
no download): OLMo-2-1B (allenai/OLMo-2-0425-1B, 1.48B parameters) and OLMoE-1B-7B
(allenai/OLMoE-1B-7B-0924, 6.9B parameters, 64 experts, top-8). Token ids come from the workbench's tiny
byte-level tokenizer (the dolma2 tokenizer needs the hub); with random weights only the sizes matter.

Steps, each in a fresh worker process (a forkserver child, so one step's peak never hides another's):
load+capture (build, then a capture at every canonical site), patch resid (resid_pre grid on an
8-token prompt pair), trace hidden (one fact, 2 noise samples), sae collect (10k tokens at the middle
layer), unlearn constrained / unlearn full (two steps of the workbench trainer: the ``constrained``
objective on the MLPs of layers 0-5, against every parameter), bnb nf4 / int8 (``wb.quantize``, then a
forward). Peak memory is the process's peak RSS on the CPU (the counter reset after the model is built,
so it is the resident model plus what the step allocated), ``max_memory_allocated`` on CUDA.

Precision: on the CPU the inference steps run OLMo-2-1B in fp32 (the workbench's CPU default) and OLMoE
in bf16; both unlearning runs hold bf16 weights, gradients and AdamW states (the trainer with
``dtype: bfloat16``), since a full-parameter fp32 AdamW step of OLMo-2-1B needs 16 B x 1.48B = 24 GiB.
OLMoE-1B-7B (6.9B parameters, 13 GiB in bf16) does not fit beside the others on a 24 GiB machine: on the
CPU it runs with the real widths and expert count but 2 of its 16 layers (``--olmoe-layers``); the
constrained run trains the first ceil(6/16 L) layers' MLPs (layers 0-5 at 16 layers).

The GPU estimate: max(FLOPs / (peak x utilisation), forwards x bf16 weight bytes / bandwidth), with an
H200's 989 TFLOP/s dense bf16 and 4.8 TB/s by default (``--gpu-tflops``, ``--gpu-util``, ``--gpu-tbs``).
Exit status 1 when any step failed or was skipped for lack of memory.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO)]

import _scale_steps as S  # noqa: E402

GIB = 2**30
STEPS = list(S.STEPS)
# imported once by the forkserver, so that each worker starts in well under a second
PRELOAD = [
    "torch", "transformers", "transformers.modeling_utils", "transformers.models.olmo2.modeling_olmo2",
    "transformers.models.olmoe.modeling_olmoe", "accelerate", "workbench", "workbench.hooks",
    "workbench.tracing", "workbench.sae.activations", "workbench.unlearning.trainer", "workbench.quantization",
    "workbench.quantization.bnb", "bitsandbytes", "_scale_models", "_scale_steps",
]  # fmt: skip


def _mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


def estimate_bytes(step: str, spec: S.Spec, n: int, dtype_bytes: int) -> int:
    """A rough peak for ``step`` (CPU guard only): weights, plus grads and AdamW states when training."""
    w = n * dtype_bytes
    if step == "unlearn full":
        return 4 * w + 2 * GIB
    if step == "unlearn constrained":
        layers = len(S.constrained_layers(spec.layers))
        mlp = layers * 3 * spec.hidden * spec.inter * max(spec.experts, 1)
        return w + 3 * mlp * dtype_bytes + 2 * GIB
    if step.startswith("bnb"):
        return int(1.6 * w) + GIB
    return int(1.2 * w) + GIB


def run_one(ctx, step: str, opts: S.Opts, deadline: float | None = None) -> dict:
    """Run ``step`` in a fresh worker; a worker that dies (e.g. killed for memory) is a failed row.

    Past ``deadline`` (a ``time.monotonic()`` value) the worker is killed and the step fails.
    """
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=S.worker, args=(send, step, opts))
    proc.start()
    send.close()
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    if not recv.poll(wait):
        proc.kill()
        proc.join()
        return {"ok": False, "step": step, "error": "time limit reached; the worker was stopped"}
    try:
        row = recv.recv()
    except EOFError:
        proc.join()
        why = " (SIGKILL: out of memory?)" if proc.exitcode == -9 else ""
        row = {"ok": False, "step": step, "error": f"worker died, exit code {proc.exitcode}{why}"}
    proc.join()
    return row


def gpu_seconds(row: dict, weight_bytes: int, args) -> float | None:
    """The one-GPU estimate of a step (compute- or bandwidth-bound, whichever is slower)."""
    if not row.get("ok") or not row.get("flops"):
        return None
    compute = row["flops"] / (args.gpu_tflops * 1e12 * args.gpu_util)
    passes = row["forwards"] * (3 if row["training"] else 1)
    return max(compute, passes * weight_bytes / (args.gpu_tbs * 1e12))


def _fmt_row(row: dict, est: float | None) -> str:
    if not row.get("ok"):
        return f"{row['step']:<20} {'FAILED' if 'skipped' not in row else 'skipped'}: {row.get('error') or row['skipped']}"
    dt = {"float32": "fp32", "bfloat16": "bf16"}.get(row["dtype"], row["dtype"])
    est_s = f"{est:.3f}" if est is not None else "-"
    return (
        f"{row['step']:<20} {dt:<5} {row['seconds']:>8.1f} {row['peak_bytes'] / GIB:>9.2f} "
        f"{row['model_bytes'] / GIB:>9.2f} {row['flops'] / 1e9:>10.1f} {row['forwards']:>5} {est_s:>10}  "
        f"{row.get('note', '')}"
    )


def table(model: str, spec: S.Spec, n: int, rows: list[dict], args) -> list[str]:
    """The printed table of one model, its unlearning memory ratio and its GPU total."""
    where = "random weights" if args.tiny else f"{spec.source}, random weights"
    depth = "" if spec.layers == S.FULL[model].layers or args.tiny else f", {spec.layers} of 16 layers"
    mem = "peak GiB = max_memory_allocated" if args.device.startswith("cuda") else "peak GiB = peak RSS"
    out = [
        f"\n{spec.name} ({where}{depth}): {S.count(n)} parameters; {args.device}"
        + (f", {args.threads} threads" if args.device == "cpu" else ""),
        f"{'step':<20} {'dtype':<5} {'time s':>8} {'peak GiB':>9} {'model GiB':>9} {'GFLOP':>10} "
        f"{'fwd':>5} {'est GPU s':>10}  notes   ({mem}; model GiB = after build, before the step)",
    ]
    total_est = 0.0
    for row in rows:
        est = gpu_seconds(row, 2 * n, args)
        total_est += est or 0.0
        out.append(_fmt_row(row, est))
    by = {r["step"]: r for r in rows if r.get("ok")}
    c, f = by.get("unlearn constrained"), by.get("unlearn full")
    if c and f:
        ratio = c["peak_bytes"] / f["peak_bytes"]
        above = (c["peak_bytes"] - c["model_bytes"]) / max(f["peak_bytes"] - f["model_bytes"], 1)
        layers = S.constrained_layers(spec.layers)
        out.append(
            f"unlearning memory: constrained (MLPs of layers {layers[0]}-{layers[-1]}) / full-parameter, both "
            f"{c['dtype']} weights with AdamW: peak {ratio:.2f} (goal <= 0.60: {'met' if ratio <= 0.6 else 'NOT met'}), "
            f"above the resident model {above:.2f}; time per step {c['per_step_s'] / f['per_step_s']:.2f}"
        )
    measured = sum(r["seconds"] for r in rows if r.get("ok"))
    out.append(
        f"measured {measured:.0f} s in all; estimated on one GPU {total_est:.1f} s of compute for the steps "
        f"with a FLOP count (builds and bnb's save + reload are not compute)"
    )
    return out


def _opts(args, model: str) -> S.Opts:
    cuda = args.device.startswith("cuda")
    if args.dtype:
        dtype = args.dtype
    else:  # the workbench's CPU default is fp32; OLMoE's experts do not fit in fp32 here
        dtype = "bfloat16" if cuda or (model == "olmoe" and not args.tiny) else "float32"
    layers = args.olmoe_layers if model == "olmoe" and not args.tiny else None
    if model == "olmoe" and not args.tiny and layers is None:
        layers = 16 if cuda else 2
    return S.Opts(
        model=model, tiny=args.tiny, layers=layers, device=args.device, dtype=dtype,
        train_dtype=args.train_dtype, threads=args.threads, workdir="", flops=not args.no_flops,
    )  # fmt: skip


def bench_model(ctx, model: str, args, deadline: float | None) -> tuple[list[str], list[dict]]:
    """Every selected step of one model, one worker each; returns the table lines and the rows."""
    opts = _opts(args, model)
    spec = opts.spec
    n = S.n_params(spec)
    rows = []
    for step in args.steps:
        dtype = opts.train_dtype if step.startswith("unlearn") else opts.dtype
        need = estimate_bytes(step, spec, n, 2 if dtype == "bfloat16" else 4)
        have = _mem_available()
        if args.device == "cpu" and need > have - GIB // 2:
            row = {
                "ok": False,
                "step": step,
                "skipped": f"needs ~{need / GIB:.1f} GiB, {have / GIB:.1f} available",
            }
        else:
            work = S.new_workdir(args.workdir)
            try:
                fail = step == args.inject_failure
                row = run_one(ctx, step, S.Opts(**{**vars(opts), "workdir": work, "fail": fail}), deadline)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        print(f"[{spec.name}] {_fmt_row(row, gpu_seconds(row, 2 * n, args))}", file=sys.stderr, flush=True)
        if not row.get("ok") and row.get("traceback"):
            print(row["traceback"], file=sys.stderr, flush=True)
        rows.append(row)
    return table(model, spec, n, rows, args), rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="olmo2,olmoe", help="olmo2 (OLMo-2-1B) and/or olmoe (OLMoE-1B-7B)")
    ap.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of: " + ", ".join(STEPS))
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--dtype", default=None, choices=["float32", "bfloat16"],
                    help="weights of the inference steps (default: bf16 on CUDA; on the CPU fp32, OLMoE bf16)")  # fmt: skip
    ap.add_argument("--train-dtype", default="bfloat16", choices=["float32", "bfloat16"],
                    help="weights (and AdamW states) of both unlearning runs; a 1B full-parameter AdamW "
                         "step in fp32 needs ~24 GiB")  # fmt: skip
    ap.add_argument("--olmoe-layers", type=int, default=None,
                    help="OLMoE depth (default: all 16 on CUDA, 2 on the CPU: real widths and experts)")  # fmt: skip
    ap.add_argument("--tiny", action="store_true", help="tiny stand-ins of both models (tests, a smoke run)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: all; 1 with --tiny)")
    ap.add_argument("--workdir", default=None, help="scratch root (default: the system temp folder)")
    ap.add_argument("--no-flops", action="store_true", help="skip FLOP counting (no GPU estimate)")
    ap.add_argument("--gpu-tflops", type=float, default=989.0, help="dense bf16 peak (H200 SXM: 989)")
    ap.add_argument("--gpu-util", type=float, default=0.4, help="assumed share of that peak reached")
    ap.add_argument("--gpu-tbs", type=float, default=4.8, help="memory bandwidth in TB/s (H200: 4.8)")
    ap.add_argument("--json", default=None, help="also write every row here")
    ap.add_argument("--time-limit", type=float, default=None, help="stop (and fail) after this many seconds")
    ap.add_argument("--inject-failure", default=None, help=argparse.SUPPRESS)  # tests: this step raises
    args = ap.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads is None:
        args.threads = 1 if args.tiny else (os.cpu_count() or 1)
    args.steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    bad = [s for s in args.steps if s not in STEPS]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if bad or not models or any(m not in S.FULL for m in models):
        ap.error(
            f"unknown step(s) {bad} or model(s) {models}; steps: {', '.join(STEPS)}; models: olmo2, olmoe"
        )
    args.models = models
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (1 when a step failed or was skipped)."""
    args = parse_args(argv)
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but torch sees no GPU (a CPU build of torch?)", file=sys.stderr)
            return 2
    ctx = mp.get_context("forkserver")
    bnb = any(s.startswith("bnb") for s in args.steps)
    ctx.set_forkserver_preload([m for m in PRELOAD if bnb or "bnb" not in m and m != "bitsandbytes"])
    deadline = None if args.time_limit is None else time.monotonic() + args.time_limit
    lines, everything = [], {}
    for model in args.models:
        out, rows = bench_model(ctx, model, args, deadline)
        lines += out
        everything[model] = rows
    print("\n".join(lines).lstrip("\n"))
    print(
        f"\nGPU estimate: max(FLOPs / ({args.gpu_tflops:.0f} TFLOP/s x {args.gpu_util:.0%}), forwards x bf16 "
        f"weights / {args.gpu_tbs} TB/s); FLOPs from torch's FlopCounterMode (matmuls; attention scores "
        f"uncounted) plus the fused MoE experts counted from their routing."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1, default=str))
    failed = [r["step"] for rows in everything.values() for r in rows if not r.get("ok")]
    if failed:
        print(f"\n{len(failed)} step(s) failed or skipped: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
