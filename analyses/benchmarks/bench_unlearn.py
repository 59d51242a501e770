"""Peak memory and step time: layer-constrained ``constrained`` vs full-parameter ``grad_diff``, same batch.

    python analyses/benchmarks/bench_unlearn.py [--model FOLDER | --random L,D,FF,V] [--layers 0,1,2]

Each configuration runs in its own subprocess (fresh allocator): load the model, build one fixed batch of
forget and retain rows from the SemEval data, run ``--warmup`` optimizer steps, then time ``--steps``
steps (forward + backward + AdamW). Memory is the training peak above the loaded model: on CUDA
``max_memory_allocated`` minus the allocation before the first step; on CPU the peak RSS over the timed
steps (VmHWM, reset through /proc/self/clear_refs after the warmup) minus the RSS before the first step
(so the optimizer state counts, one-off first-step allocations that were returned do not). Goal (issue 5): constrained uses
<= 60% of grad_diff's memory and <= 80% of its step time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _model(args):
    import torch

    from workbench.models import load, wrap

    if args.random:
        from transformers import AutoModelForCausalLM, Olmo2Config

        from workbench.models.tiny import tiny_tokenizer

        L, D, FF, V = (int(x) for x in args.random.split(","))
        torch.manual_seed(0)
        cfg = Olmo2Config(vocab_size=V, hidden_size=D, intermediate_size=FF, num_hidden_layers=L,
                          num_attention_heads=max(1, D // 64), num_key_value_heads=max(1, D // 64),
                          max_position_embeddings=512, pad_token_id=2, bos_token_id=0, eos_token_id=1)  # fmt: skip
        dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
        return wrap(
            AutoModelForCausalLM.from_config(cfg, dtype=dtype),
            tiny_tokenizer(),
            spec=f"<random {args.random}>",
        )
    return load(args.model, dtype="bfloat16" if args.dtype == "bf16" else "float32")


def worker(args) -> dict:
    """One configuration in this process; returns its measurements."""
    import torch

    from workbench.unlearning import DataConfig, SelectConfig, apply_selection
    from workbench.unlearning.data import collate, load_data, pad_id_of
    from workbench.unlearning.objectives import OBJECTIVES, Context

    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(args.threads)
    lm = _model(args)
    if cuda:
        lm.model.to("cuda")
    data = load_data(lm.tokenizer, DataConfig(path=args.data, max_length=args.max_length, val_fraction=0.0))
    half = args.batch // 2
    batch = collate(data.forget[:half] + data.retain[:half], pad_id_of(lm.tokenizer)).to(lm.device)
    method = "constrained" if args.mode == "constrained" else "grad_diff"
    if args.mode == "constrained":
        layers = [int(x) for x in args.layers.split(",")]
        apply_selection(lm, SelectConfig(layers=layers, kind="mlp"))
    else:  # full-parameter: every weight, embeddings, norms and head too
        apply_selection(lm, SelectConfig(layers="all", kind="*"))
    if args.grad_ckpt:
        lm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in lm.model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    obj = OBJECTIVES[method](OBJECTIVES[method].params_cls(), lm)
    opt = torch.optim.AdamW(params, lr=1e-5)
    lm.model.train()
    ctx = Context(lm.model, lm, epoch=0, ceiling=10.0)

    def step():
        out = obj(ctx, batch, None)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_kib("VmRSS") * 1024
    for _ in range(args.warmup):
        step()
    if not cuda:  # one-off lazy allocations of the first steps do not count; optimizer state does (base)
        _reset_peak()
    times = []
    for _ in range(args.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    peak = (torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024) - base
    total = sum(p.numel() for p in lm.model.parameters())
    return {"mode": args.mode, "device": "cuda" if cuda else "cpu", "peak_bytes": peak,
            "step_s": statistics.median(times), "trainable": trainable, "total": total,
            "tokens": int(batch.attention_mask.sum())}  # fmt: skip


def _default_model() -> str:
    from workbench.organism import cached

    for preset in ("default", "tiny"):
        found = cached(preset)  # the build of the current preset config, never a stale one
        if found is not None:
            return str(found)
    raise SystemExit("no organism built; pass --model or --random, or run `workbench organism build`")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: the built organism)")
    ap.add_argument(
        "--random", default=None, help="random OLMo-2 'layers,hidden,ffn,vocab' instead of --model"
    )
    ap.add_argument("--data", default=None, help="SemEval folder (default: the model folder)")
    ap.add_argument("--layers", default="0,1,2", help="constrained: the trained MLP layers")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--grad-ckpt", action="store_true", help="gradient checkpointing in both runs")
    ap.add_argument("--mode", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(worker(args)))
        return
    if not args.random and not args.model:
        args.model = _default_model()
    args.data = args.data or args.model
    if not args.data:
        raise SystemExit("--random needs --data (a SemEval folder)")
    rows = {}
    for mode in ("constrained", "full_grad_diff"):
        cmd = (
            [sys.executable, __file__, "--mode", mode]
            + [
                f"--{k.replace('_', '-')}={v}"
                for k, v in vars(args).items()
                if v is not None and not isinstance(v, bool) and k not in ("mode", "json")
            ]
            + (["--grad-ckpt"] if args.grad_ckpt else [])
        )
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        rows[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    c, g = rows["constrained"], rows["full_grad_diff"]
    ckpt = ", gradient checkpointing" if args.grad_ckpt else ""
    print(
        f"model: {args.model or args.random}  device: {c['device']}  batch: {args.batch} rows, {c['tokens']} tokens{ckpt}"
    )
    print(f"{'':16}{'trainable':>14}{'peak MiB':>12}{'step ms':>10}")
    for name, r in (("constrained", c), ("full grad_diff", g)):
        print(f"{name:16}{r['trainable']:>14,}{r['peak_bytes'] / 2**20:>12.1f}{1000 * r['step_s']:>10.1f}")
    mem, tim = c["peak_bytes"] / max(g["peak_bytes"], 1), c["step_s"] / g["step_s"]
    print(f"memory ratio {mem:.2f} (goal <= 0.60: {'met' if mem <= 0.6 else 'NOT met'}); "
          f"time ratio {tim:.2f} (goal <= 0.80: {'met' if tim <= 0.8 else 'NOT met'})")  # fmt: skip
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rows": rows, "memory_ratio": mem, "time_ratio": tim}, indent=2)
        )


if __name__ == "__main__":
    main()
