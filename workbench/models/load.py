"""Load a model by local folder or hub id into a :class:`LoadedModel`.

Safetensors only (``use_safetensors=True``: a checkpoint that ships only pickled ``.bin`` weights is
refused) and ``trust_remote_code=False`` unless the caller opts in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import WorkbenchError
from .families import FamilyAdapter, SiteSpec, adapter_for, unknown_site

log = logging.getLogger(__name__)

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "auto": "auto",
}


@dataclasses.dataclass
class LoadedModel:
    """A HF causal LM with its tokenizer and family adapter.

    ``spec`` is where it came from (a folder or hub id, or ``"<memory>"``). Sites are resolved through
    :meth:`site` and hooked with :meth:`hooks` (see :mod:`workbench.hooks`).
    """

    model: Any
    tokenizer: Any
    adapter: FamilyAdapter
    spec: str = "<memory>"

    @property
    def family(self) -> str:
        """The family adapter's name (``olmo2``, ``llama-like``, ...)."""
        return self.adapter.name

    @property
    def config(self) -> Any:
        """The HF config."""
        return self.model.config

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return self.adapter.n_layers(self.model.config)

    @property
    def n_heads(self) -> int:
        """Number of attention (query) heads."""
        cfg = self.model.config
        return getattr(cfg, "num_attention_heads", None) or cfg.n_head

    @property
    def d_model(self) -> int:
        """Residual stream width."""
        cfg = self.model.config
        return getattr(cfg, "hidden_size", None) or cfg.n_embd

    @property
    def d_head(self) -> int:
        """Per-head width."""
        return getattr(self.model.config, "head_dim", None) or self.d_model // self.n_heads

    @property
    def device(self) -> torch.device:
        """Device of the first parameter."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the first floating parameter."""
        return next(p.dtype for p in self.model.parameters() if p.is_floating_point())

    def sites(self) -> list[str]:
        """Every canonical site of this model."""
        return self.adapter.site_names(self.n_layers)

    def site(self, name: str) -> SiteSpec:
        """Resolve a canonical site or a raw module path to a :class:`SiteSpec`.

        ``module:PATH`` (or a bare PATH) is that module's output; ``input:PATH`` is its first input.
        """
        if name.startswith(("module:", "input:")):
            kind, _, path = name.partition(":")
            return self._module_site(path, name, "input" if kind == "input" else "output")
        try:
            return self.adapter.resolve(name, self.n_layers)
        except WorkbenchError as err:
            if name in dict(self.model.named_modules()) and name:
                return self._module_site(name, name)
            raise err from None

    def _module_site(self, path: str, name: str, io: str = "output") -> SiteSpec:
        try:  # a direct lookup (building the dict of every module was ~10% of a trace's CPU time)
            self.model.get_submodule(path)
        except AttributeError:
            raise unknown_site(name, self.adapter, self.n_layers) from None
        return SiteSpec(name, path, io)

    def expand(self, pattern: str) -> list[str]:
        """Expand a glob over canonical sites (``layers.*.mlp``) or module paths into site names."""
        import fnmatch

        if not any(c in pattern for c in "*?["):
            self.site(pattern)
            return [pattern]
        found = [s for s in self.sites() if fnmatch.fnmatchcase(s, pattern)]
        if not found:
            found = [n for n, _ in self.model.named_modules() if n and fnmatch.fnmatchcase(n, pattern)]
        if not found:
            raise unknown_site(pattern, self.adapter, self.n_layers)
        return found

    def hooks(self):
        """A :class:`workbench.hooks.Hooks` context on this model."""
        from ..hooks import Hooks

        return Hooks(self)

    def require_tokenizer(self, what: str) -> Any:
        """The tokenizer, or a one-line WorkbenchError saying that ``what`` needs one."""
        if self.tokenizer is None:
            raise WorkbenchError(
                f"{what} needs a tokenizer, and this model was loaded without one; load the folder with "
                "wb.load(path) (it reads the tokenizer beside the weights) or wrap(model, tokenizer)"
            )
        return self.tokenizer

    def to_transformer_lens(self, *, compatibility: bool = True) -> Any:
        """A TransformerLens ``TransformerBridge`` over these weights (shared, not copied); see
        :mod:`workbench.models.transformer_lens` for the canonical site -> hook name table."""
        from .transformer_lens import to_transformer_lens

        return to_transformer_lens(self, compatibility=compatibility)

    def tokenize(self, texts: str | list[str], *, padding_side: str = "right", **kw) -> dict:
        """Tokenize to tensors on the model's device (padding on the given side)."""
        tok = self.tokenizer
        old = tok.padding_side
        tok.padding_side = padding_side
        try:
            enc = tok(texts if isinstance(texts, list) else [texts], return_tensors="pt", padding=True, **kw)
        finally:
            tok.padding_side = old
        return {k: v.to(self.device) for k, v in enc.items()}

    def to_tokens(self, text: str) -> list[str]:
        """The token strings of ``text`` as the model sees them."""
        ids = self.tokenizer(text)["input_ids"]
        return [self.tokenizer.decode([i]) for i in ids]


def wrap(model: Any, tokenizer: Any = None, spec: str = "<memory>") -> LoadedModel:
    """Wrap an in-memory HF model (and tokenizer) as a :class:`LoadedModel`."""
    adapter = adapter_for(getattr(model.config, "model_type", "?"))
    if tokenizer is not None and tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, adapter=adapter, spec=spec)


def _looks_local(spec: str) -> bool:
    if spec.startswith((".", "/", "~")) or os.sep in spec.strip("/").replace("/", "", 1):
        return True
    return not re.fullmatch(r"[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?", spec)


def load(
    spec: str | os.PathLike,
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    **model_kwargs: Any,
) -> LoadedModel:
    """Load ``spec`` (a local folder or a hub id) as a :class:`LoadedModel`.

    ``dtype`` is a torch dtype or one of ``float32|bfloat16|float16|auto`` (default: float32 on CPU, as
    stored otherwise). Extra keyword arguments go to ``from_pretrained`` (e.g. ``quantization_config``).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = str(spec)
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise WorkbenchError(f"model {spec!r} is a file; pass the folder that holds config.json")
        if not (path / "config.json").is_file():
            raise WorkbenchError(
                f"model folder {spec!r} has no config.json; point at a save_pretrained folder"
            )
        source = str(path)
    elif _looks_local(spec):
        raise WorkbenchError(f"model folder {spec!r} does not exist; check the path or build it first")
    else:
        source = spec
    common = dict(trust_remote_code=trust_remote_code, revision=revision)
    try:
        config = AutoConfig.from_pretrained(source, **common)
    except (OSError, ValueError) as e:
        raise WorkbenchError(_load_hint(spec, e)) from None
    adapter = adapter_for(config.model_type)
    torch_dtype = _DTYPES.get(dtype, dtype) if isinstance(dtype, str) else dtype
    if isinstance(dtype, str) and dtype not in _DTYPES:
        raise WorkbenchError(f"unknown dtype {dtype!r}; use one of {', '.join(_DTYPES)}")
    if torch_dtype is None:
        torch_dtype = torch.float32 if (device is None or str(device) == "cpu") else "auto"
    try:
        with _quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                source, config=config, dtype=torch_dtype, use_safetensors=True, **common, **model_kwargs
            )
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
    except (OSError, ValueError) as e:
        raise WorkbenchError(_load_hint(spec, e)) from None
    if device is not None and not model_kwargs.get("quantization_config"):
        model.to(device)
    model.eval()
    lm = wrap(model, tokenizer, spec=spec)
    log.info("loaded %s (%s, %d layers)", spec, adapter.name, lm.n_layers)
    return lm


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load-time chatter (e.g. "layers were not sharded") for one call."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _load_hint(spec: str, err: Exception) -> str:
    msg = str(err).splitlines()[0] if str(err) else type(err).__name__
    if "safetensors" in msg.lower() or "use_safetensors" in msg:
        return (
            f"model {spec!r} has no safetensors weights (pickled .bin files are refused); "
            f"convert it with save_pretrained(safe_serialization=True)"
        )
    if os.environ.get("HF_HUB_OFFLINE") == "1" or "offline" in msg.lower() or "connect" in msg.lower():
        return (
            f"could not load {spec!r} from the hub (offline, or not in the local cache); download it "
            f"first with `huggingface-cli download {spec}` or pass a local folder"
        )
    return f"could not load model {spec!r}: {msg}"
