"""Models and meters of ``bench_scale.py``: the published configurations, random-weight builds, and the
counters of memory, FLOPs and forwards that every step runs under."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Spec:
    """Sizes of one model: a published configuration, or a tiny stand-in with the same structure."""

    name: str
    family: str  # olmo2 | olmoe
    source: str  # the hub id whose config.json the numbers come from
    layers: int
    hidden: int
    inter: int
    heads: int
    vocab: int
    rope_theta: float
    eps: float
    max_pos: int = 4096
    experts: int = 0
    top_k: int = 0


# allenai/OLMo-2-0425-1B config.json: hidden 2048, intermediate 8192, 16 layers, 16 heads (16 kv heads),
# vocab 100352, rope_theta 500000, rms_norm_eps 1e-6, max_position_embeddings 4096, untied embeddings.
OLMO2_1B = Spec("OLMo-2-1B", "olmo2", "allenai/OLMo-2-0425-1B", 16, 2048, 8192, 16, 100352, 500000.0, 1e-6)
# allenai/OLMoE-1B-7B-0924 (and -0125) config.json: hidden 2048, 64 experts of intermediate 1024, top-8
# routing (norm_topk_prob false), 16 layers, 16 heads, vocab 50304, rope_theta 10000, rms_norm_eps 1e-5.
OLMOE_1B_7B = Spec(
    "OLMoE-1B-7B", "olmoe", "allenai/OLMoE-1B-7B-0924", 16, 2048, 1024, 16, 50304, 10000.0, 1e-5,
    experts=64, top_k=8,
)  # fmt: skip
# Tiny stand-ins (tests, --tiny): same classes and code paths, every Linear a multiple of 32 wide.
TINY = {
    "olmo2": Spec("tiny OLMo-2", "olmo2", "-", 4, 64, 256, 4, 320, 500000.0, 1e-6, max_pos=256),
    "olmoe": Spec("tiny OLMoE", "olmoe", "-", 2, 64, 32, 4, 320, 10000.0, 1e-5, 256, experts=8, top_k=2),
}
FULL = {"olmo2": OLMO2_1B, "olmoe": OLMOE_1B_7B}


@dataclasses.dataclass
class Opts:
    """What a worker needs to know (picklable)."""

    model: str
    tiny: bool
    layers: int | None  # depth override (reduced-depth OLMoE)
    device: str
    dtype: str  # float32 | bfloat16: inference steps
    train_dtype: str  # the two unlearning steps
    threads: int
    workdir: str
    flops: bool = True
    fail: bool = False  # tests: raise inside the step (the runner must report it and exit non-zero)

    @property
    def spec(self) -> Spec:
        base = (TINY if self.tiny else FULL)[self.model]
        return dataclasses.replace(base, layers=self.layers) if self.layers else base

    @property
    def sizes(self) -> dict[str, int]:
        if self.tiny:
            return dict(capture_tokens=16, sae_tokens=500, quant_tokens=16, train_len=32)
        return dict(capture_tokens=128, sae_tokens=10_000, quant_tokens=64, train_len=128)


def size(n_bytes: float) -> str:
    """Bytes as GiB, or MiB below one GiB."""
    return f"{n_bytes / GIB:.2f} GiB" if n_bytes >= GIB else f"{n_bytes / 2**20:.1f} MiB"


def count(n: float) -> str:
    """A parameter count as B, M or k."""
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(int(n))


def hf_config(spec: Spec) -> Any:
    """The transformers config of ``spec`` (token ids of the workbench's tiny tokenizer: bos 0, eos 1, pad 2)."""
    import transformers as tf

    common = dict(
        vocab_size=spec.vocab,
        hidden_size=spec.hidden,
        intermediate_size=spec.inter,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.heads,
        max_position_embeddings=spec.max_pos,
        rms_norm_eps=spec.eps,
        rope_parameters={"rope_type": "default", "rope_theta": spec.rope_theta},
        tie_word_embeddings=False,
        attention_bias=False,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    if spec.family == "olmoe":
        return tf.OlmoeConfig(
            **common, num_experts=spec.experts, num_experts_per_tok=spec.top_k, norm_topk_prob=False
        )
    return tf.Olmo2Config(**common)


def n_params(spec: Spec) -> int:
    """Parameter count of ``spec``, by formula (the parent process never imports transformers)."""
    d, f, n_exp = spec.hidden, spec.inter, max(spec.experts, 1)
    attn = 4 * d * d + 2 * d  # q, k, v, o (no bias) and the qk-norms over the whole projection
    mlp = n_exp * 3 * d * f + (spec.experts * d)  # (experts') gate, up, down, and the router
    return 2 * spec.vocab * d + d + spec.layers * (attn + mlp + 2 * d)


# -- measurement ---------------------------------------------------------------------------------------
def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def mapped_rss(prefix: str) -> int:
    """Resident bytes of this process's file mappings whose path starts with ``prefix``."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:  # a mapping's header line
            inside = len(head) >= 6 and head[5].startswith(prefix)
        elif inside and line.startswith("Rss:"):
            total += int(head[1]) * 1024
    return total


class Meter:
    """Peak memory since :meth:`reset` (CPU: VmHWM after clear_refs; CUDA: max_memory_allocated)."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")
        self.reset_ok = True

    def now(self) -> int:
        import torch

        if self.cuda:
            return torch.cuda.memory_allocated()
        return status_kib("VmRSS") * 1024

    def reset(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self.reset_ok = False  # the peak then includes the build

    def peak(self) -> int:
        import torch

        if self.cuda:
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated()
        return status_kib("VmHWM") * 1024


class Counter:
    """FLOPs and model forwards of a step.

    FLOPs are torch's FlopCounterMode (aten matmuls) plus what it cannot see, counted from the modules'
    shapes: the fused MoE experts (transformers' grouped_mm custom op; per routed (token, expert) pair)
    and bitsandbytes' 4-bit / int8 Linears (their kernels are custom ops). For those modules the analytic
    count replaces whatever the mode saw inside them, so nothing is counted twice.
    """

    def __init__(self, lm: Any, enabled: bool):
        self.lm, self.enabled = lm, enabled
        self.forwards = 0
        self.extra = 0
        self.mode = None
        self._entry: dict[int, int] = {}

    def __enter__(self) -> Counter:
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        # global hooks: every top-level model call counts, the quantized copy of the bnb steps too
        self.handles = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
        if self.enabled:
            from torch.utils.flop_counter import FlopCounterMode

            self.mode = FlopCounterMode(display=False)
            self.mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.mode is not None:
            self.mode.__exit__(*exc)
        for h in self.handles:
            h.remove()

    def _seen(self) -> int:
        return self.mode.get_total_flops() if self.mode is not None else 0

    def _pre(self, module, args) -> None:
        if type(module).__name__.endswith("ForCausalLM"):
            self.forwards += 1
        if self.mode is not None and _uncounted(module):
            self._entry[id(module)] = self._seen()

    def _post(self, module, args, output) -> None:
        if self.mode is None or id(module) not in self._entry:
            return
        import torch

        seen = self._seen() - self._entry.pop(id(module))
        if hasattr(module, "gate_up_proj"):  # experts: 2 FLOPs per multiply-add per routed pair
            fwd = 2 * args[1].numel() * (module.gate_up_proj[0].numel() + module.down_proj[0].numel())
            trained = module.gate_up_proj.requires_grad
        else:  # a bnb Linear: 2 * in * out per token
            fwd = 2 * (args[0].numel() // module.in_features) * module.in_features * module.out_features
            trained = False
        mult = 1  # the backward, when one follows: input gradients, and weight gradients when trained
        if torch.is_grad_enabled() and getattr(output, "requires_grad", False):
            mult = 3 if trained else 2
        self.extra += max(0, fwd - seen) * mult

    @property
    def flops(self) -> int:
        return self._seen() + self.extra


def _uncounted(module: Any) -> bool:
    name = type(module).__name__
    return name in ("Linear4bit", "Linear8bitLt") or (
        hasattr(module, "gate_up_proj") and name.endswith("Experts")
    )


def build(opts: Opts, dtype: str) -> tuple[Any, float]:
    """The random-weight model of ``opts`` wrapped as a LoadedModel, and the seconds it took."""
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.models import wrap
    from workbench.models.tiny import tiny_tokenizer

    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(opts.device):
        model = AutoModelForCausalLM.from_config(hf_config(opts.spec), dtype=getattr(torch, dtype))
    model.eval()
    lm = wrap(model, tiny_tokenizer(), spec=f"<random {opts.spec.name}>")
    sync(opts.device)
    return lm, time.perf_counter() - start


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
