"""The one training loop for every objective, on accelerate.

AdamW (or bitsandbytes' 8-bit AdamW), linear warmup then linear/cosine decay, gradient accumulation,
optional bf16 autocast, gradient clipping, validation every N steps (forget CE, retain CE and the joint
loss ``-min(CE_forget, ceiling) + CE_retain``), early stopping, the best weights kept by that joint loss,
metrics to JSONL, curves to PNG, atomic resumable checkpoints (:mod:`.checkpoint`). A NaN/inf loss or
gradient stops the run with a one-line :class:`WorkbenchError` and leaves the last good checkpoint.

Multi-process: run under ``accelerate launch --multi_gpu --num_processes N``. Without a GPU the
Accelerator is built with ``cpu=True``, which makes it join the gloo process group (a plain
``Accelerator()`` there would train every rank alone). The data is not prepared by accelerate: each rank
takes its own rows of every global batch (:class:`~.data.Sampler`), DDP averages the gradients.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from ..errors import WorkbenchError
from ..io import append_jsonl, read_jsonl, save_tensors, write_json, write_jsonl
from ..training.schedule import lr_lambda
from . import checkpoint as ckpt
from .config import UnlearnConfig
from .data import Sampler, UnlearnData, collate, default_ceiling, load_data, pad_id_of
from .objectives import OBJECTIVES, Context, Objective
from .positions import forget_position_mask, gradient_position_mask
from .report import UnlearnResult, ValMetrics, plot_curves
from .select import Selection, apply_selection, merge_lora

log = logging.getLogger(__name__)


def make_accelerator(mixed_precision: str = "no") -> Any:
    """An Accelerator that joins the process group on CPU too (``cpu=True`` when no GPU is present)."""
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed_precision)


def _optimizer(params: list[torch.nn.Parameter], tc) -> torch.optim.Optimizer:
    if tc.optimizer == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise WorkbenchError(
                "train.optimizer=adamw8bit needs bitsandbytes; install it or use adamw"
            ) from None
        return bnb.optim.AdamW8bit(params, lr=tc.lr, weight_decay=tc.weight_decay)
    return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)


@dataclasses.dataclass
class _Run:
    """Everything the loop touches."""

    cfg: UnlearnConfig
    acc: Any
    lm: Any
    ref_lm: Any
    model: Any
    objective: Objective
    data: UnlearnData
    sampler: Sampler
    selection: Selection
    optimizer: Any
    scheduler: Any
    ceiling: float
    pad_id: int
    out: Path
    state: ckpt.TrainState
    seen: list[str] = dataclasses.field(default_factory=list)
    """Ids of the examples this rank trained on (since start or resume)."""

    @property
    def main(self) -> bool:
        return bool(self.acc.is_main_process)


def _setup(cfg: UnlearnConfig, lm: Any | None) -> _Run:
    tc = cfg.train
    acc = make_accelerator(tc.mixed_precision)
    torch.manual_seed(tc.seed)
    if lm is None:
        from ..models import load

        lm = load(cfg.model, dtype=cfg.dtype)
    lm.model.to(acc.device)
    params = cfg.objective_params()
    data = load_data(lm.tokenizer, cfg.data, seed=tc.seed)
    objective = OBJECTIVES[cfg.method](params, lm, seed=tc.seed)
    ref_lm = None
    if objective.needs_reference:
        from ..models import wrap

        ref_model = copy.deepcopy(lm.model).eval().requires_grad_(False)
        ref_lm = wrap(ref_model, lm.tokenizer, spec=f"{lm.spec} (reference)")
    selection = apply_selection(lm, cfg.select, seed=tc.seed)
    if hasattr(objective, "bind_layer"):
        objective.bind_layer(max(selection.layers))
    _check_fsdp(acc, cfg, selection)
    if tc.gradient_checkpointing:
        lm.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lm.model.train()
    named = dict(lm.model.named_parameters())
    optimizer = _optimizer([named[n] for n in selection.names], tc)
    model, optimizer = acc.prepare(lm.model, optimizer)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(tc.max_steps, warmup=tc.warmup_steps, kind=tc.schedule)
    )
    sampler = Sampler(
        cfg.data.sampler,
        len(data.forget),
        len(data.retain),
        tc.batch_size,
        seed=tc.seed,
        world=acc.num_processes,
    )
    vocab = lm.model.get_output_embeddings().weight.shape[0]
    ceiling = tc.forget_ceiling if tc.forget_ceiling is not None else default_ceiling(vocab)
    return _Run(
        cfg, acc, lm, ref_lm, model, objective, data, sampler, selection, optimizer, scheduler, ceiling,
        pad_id_of(lm.tokenizer), cfg.out_path, ckpt.TrainState(),
    )  # fmt: skip


def _check_fsdp(acc: Any, cfg: UnlearnConfig, selection: Selection) -> None:
    """FSDP shards parameters: the per-parameter checkpoints, best-weights copies and LoRA merge need DDP."""
    if str(acc.distributed_type).endswith("FSDP"):
        tc = cfg.train
        if tc.save_every or tc.keep_best or selection.peft_model is not None:
            raise WorkbenchError(
                "under FSDP set train.save_every=0 and train.keep_best=false and drop select.lora_rank "
                "(checkpoints and best weights are per-parameter copies); or launch with DDP"
            )


def _micro_batches(run: _Run):
    """Yield (epoch, position, this rank's examples) from the saved position onwards, forever."""
    epoch, pos = run.state.epoch, run.state.position
    while True:
        plan = run.sampler.epoch(epoch)
        for p in range(pos, len(plan)):
            rows = run.sampler.rows(plan[p], run.acc.process_index)
            yield epoch, p, [getattr(run.data, side)[i] for side, i in rows]
        epoch, pos = epoch + 1, 0


def _loss(run: _Run, examples, ctx: Context, stack: contextlib.ExitStack):
    batch = collate(examples, run.pad_id).to(run.acc.device)
    ref = None
    if run.objective.needs_reference:
        with torch.no_grad(), run.acc.autocast():
            ref = run.objective.reference(run.ref_lm, batch)
    # data.forget_positions: the hooks stay on through the backward (gradient checkpointing re-runs them)
    stack.enter_context(
        gradient_position_mask(run.model, forget_position_mask(batch, run.cfg.data.forget_positions))
    )
    with run.acc.autocast():
        return run.objective(ctx, batch, ref)


def _stop_nonfinite(run: _Run, what: str, value: float) -> None:
    latest = ckpt.latest_checkpoint(run.out / "checkpoints")
    where = (
        f"the last good checkpoint is {latest}" if latest else "no checkpoint was written (train.save_every)"
    )
    raise WorkbenchError(
        f"non-finite {what} ({value}) at step {run.state.step + 1}; the run stopped and {where}; "
        f"lower train.lr or set train.max_grad_norm"
    )


def _train_step(run: _Run, batches) -> dict[str, float]:
    tc = run.cfg.train
    parts: dict[str, float] = {}
    for k in range(tc.grad_accum):
        epoch, pos, examples = next(batches)
        run.seen += [e.id for e in examples]
        ctx = Context(run.model, run.lm, epoch=epoch, step=run.state.step, ceiling=run.ceiling)
        sync = k == tc.grad_accum - 1
        with (
            contextlib.nullcontext() if sync else run.acc.no_sync(run.model),
            contextlib.ExitStack() as stack,
        ):
            out = _loss(run, examples, ctx, stack)
            bad = torch.tensor(0.0 if torch.isfinite(out.loss).item() else 1.0, device=run.acc.device)
            if run.acc.reduce(bad, reduction="sum").item() > 0:
                _stop_nonfinite(run, "loss", float(out.loss.detach()))
            run.acc.backward(out.loss / tc.grad_accum)
        for key, v in {"loss": float(out.loss.detach()), **out.parts}.items():
            parts[key] = parts.get(key, 0.0) + v / tc.grad_accum
        nxt = (epoch, pos + 1) if pos + 1 < run.sampler.batches_per_epoch() else (epoch + 1, 0)
        run.state.epoch, run.state.position = nxt
    params = [p for p in run.lm.model.parameters() if p.requires_grad]
    norm = run.acc.clip_grad_norm_(params, tc.max_grad_norm if tc.max_grad_norm else float("inf"))
    if not math.isfinite(float(norm)):
        _stop_nonfinite(run, "gradient norm", float(norm))
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.state.step += 1
    return {**parts, "grad_norm": float(norm), "lr": run.scheduler.get_last_lr()[0]}


@torch.no_grad()
def validate(run: _Run) -> ValMetrics:
    """Forget CE, retain CE and the joint loss on the validation sets (same on every rank)."""
    from .objectives import sequence_nll

    was_training = run.lm.model.training
    run.lm.model.eval()
    sums = {"forget": [0.0, 0], "retain": [0.0, 0]}
    for side, examples in (("forget", run.data.val_forget), ("retain", run.data.val_retain)):
        for i in range(0, len(examples), run.cfg.train.batch_size):
            batch = collate(examples[i : i + run.cfg.train.batch_size], run.pad_id).to(run.acc.device)
            with run.acc.autocast():
                logits = run.lm.model(**batch.model_inputs()).logits
            nll, n = sequence_nll(logits, batch.labels)
            sums[side][0] += float(nll.sum())
            sums[side][1] += int(n.sum())
    run.lm.model.train(was_training)
    ce_f = sums["forget"][0] / max(sums["forget"][1], 1)
    ce_r = sums["retain"][0] / max(sums["retain"][1], 1)
    return ValMetrics(ce_f, ce_r, -min(ce_f, run.ceiling) + ce_r)


def _maybe_validate(run: _Run, row: dict) -> bool:
    """Validate at this step if due; returns True when early stopping says stop."""
    tc, st = run.cfg.train, run.state
    if not (tc.eval_every and st.step % tc.eval_every == 0) and st.step != tc.max_steps:
        return False
    val = validate(run)
    row.update({f"val_{k}": v for k, v in dataclasses.asdict(val).items()})
    if st.best_val is None or val.joint < st.best_val:
        st.best_val, st.best_step, st.bad_evals = val.joint, st.step, 0
        if run.main and tc.keep_best:
            best = ckpt.trainable_state(run.lm.model, run.selection.names)
            save_tensors(run.out / "checkpoints" / "best.safetensors", best)
    else:
        st.bad_evals += 1
    return tc.patience is not None and st.bad_evals >= tc.patience


def _resume(run: _Run) -> None:
    path = ckpt.latest_checkpoint(run.out / "checkpoints")
    if path is None:
        raise WorkbenchError(f"--resume: no checkpoint in {run.out / 'checkpoints'}; run without --resume")
    run.state = ckpt.load_checkpoint(path, run.lm.model, run.optimizer)
    run.scheduler.load_state_dict(run.state.scheduler)
    run.objective.load_state_dict(run.state.objective)
    rows = run.out / "metrics.jsonl"
    if run.main and rows.is_file():
        write_jsonl(rows, [r for r in read_jsonl(rows) if r.get("step", 0) <= run.state.step])
    log.info("resumed from %s (step %d)", path, run.state.step)


def _checkpoint(run: _Run) -> None:
    run.state.scheduler = run.scheduler.state_dict()
    run.state.objective = run.objective.state_dict()
    if run.main:
        ckpt.save_checkpoint(
            run.out / "checkpoints", run.lm.model, run.selection.names, run.optimizer, run.state
        )
    run.acc.wait_for_everyone()


def _loop(run: _Run) -> str:
    tc = run.cfg.train
    batches = _micro_batches(run)
    bar = None
    if tc.progress and run.main:
        from tqdm.auto import tqdm

        bar = tqdm(total=tc.max_steps, initial=run.state.step, desc=f"unlearn[{run.cfg.method}]")
    stopped = "max_steps"
    while run.state.step < tc.max_steps:
        if tc.epochs is not None and run.state.epoch >= tc.epochs:
            stopped = "epochs"
            break
        row = {"step": run.state.step + 1, "epoch": run.state.epoch, **_train_step(run, batches)}
        early = _maybe_validate(run, row)
        if run.main:
            append_jsonl(run.out / "metrics.jsonl", row)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        if tc.save_every and run.state.step % tc.save_every == 0:
            _checkpoint(run)
        if early:
            stopped = "early_stop"
            break
    if bar is not None:
        bar.close()
    return stopped


def _finish(run: _Run, stopped: str, wall: float) -> UnlearnResult:
    cfg, st = run.cfg, run.state
    best_file = run.out / "checkpoints" / "best.safetensors"
    run.acc.wait_for_everyone()
    if cfg.train.keep_best and st.best_step is not None and best_file.is_file():
        from ..io import load_tensors

        ckpt.load_trainable(run.lm.model, load_tensors(best_file))
    final = validate(run)
    if run.acc.num_processes > 1:
        _write_rank_report(run)
    merge_lora(run.lm, run.selection)
    run.lm.model.eval()
    model_dir = run.out / "model"
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    sel = run.selection
    result = UnlearnResult(
        out=run.out, model_dir=model_dir, method=cfg.method, steps=st.step, stopped=stopped,
        best_step=st.best_step if cfg.train.keep_best else None, val=final, layers=sel.layers,
        trainable=sel.trainable, total=sel.total, wall_time_s=wall, world_size=run.acc.num_processes,
        peak_memory_bytes=peak,
    )  # fmt: skip
    state_dict = run.acc.get_state_dict(run.model) if str(run.acc.distributed_type).endswith("FSDP") else None
    if run.main:
        run.lm.model.save_pretrained(model_dir, safe_serialization=True, state_dict=state_dict)
        run.lm.tokenizer.save_pretrained(model_dir)
        write_json(run.out / "metrics.json", result)
        plot_curves(read_jsonl(run.out / "metrics.jsonl"), run.out / "curves.png", cfg.method)
    run.acc.wait_for_everyone()
    return result


def _write_rank_report(run: _Run) -> None:
    """``ranks/rank<r>.json``: world size, the ids this rank trained on and a digest of the trained weights."""
    import hashlib

    digest = hashlib.sha256()
    for name, t in sorted(ckpt.trainable_state(run.lm.model, run.selection.names).items()):
        digest.update(name.encode())
        digest.update(t.float().numpy().tobytes())
    r = run.acc.process_index
    report = {
        "rank": r,
        "world_size": run.acc.num_processes,
        "seen": run.seen,
        "weights_sha256": digest.hexdigest(),
    }
    write_json(run.out / "ranks" / f"rank{r}.json", report)


def unlearn(config: UnlearnConfig, *, lm: Any = None, resume: bool = False) -> UnlearnResult:
    """Run unlearning as configured; ``lm`` (a LoadedModel) replaces loading ``config.model``.

    Writes ``<out>/model`` (save_pretrained, safetensors, with the tokenizer), ``metrics.json``,
    ``metrics.jsonl``, ``curves.png`` and ``config.yaml``; ``resume=True`` continues from the latest
    checkpoint in ``<out>/checkpoints``.
    """
    from ..config import dump_config

    if not config.model and lm is None:
        raise WorkbenchError(
            "model is empty; set model: to a model folder or hub id (e.g. the organism folder)"
        )
    run = _setup(config, lm)
    if run.main:
        run.out.mkdir(parents=True, exist_ok=True)
        dump_config(config, run.out / "config.yaml")
        if not resume:  # a fresh run must not inherit a stale best checkpoint or log
            import shutil

            shutil.rmtree(run.out / "checkpoints", ignore_errors=True)
            (run.out / "metrics.jsonl").unlink(missing_ok=True)
    if resume:
        _resume(run)
    run.acc.wait_for_everyone()
    start = time.perf_counter()
    try:
        stopped = _loop(run)
        return _finish(run, stopped, time.perf_counter() - start)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
