"""Activation collection through the hook engine, and a sharded on-disk store streamed through a
shuffling buffer.

:func:`collect` runs a model over a text source (the organism corpus, a JSONL or text file, or a local HF
``datasets`` folder), captures one site with ``h.capture(site)`` (the forward stops right after that site),
drops BOS and padding positions, and writes ``shard_XXXXX.safetensors`` files (``acts [n, d]`` in the
chosen dtype, ``tokens [n]``) plus ``store.json``. :class:`ActivationStore` reads them back as shuffled
batches with bounded memory (one shard plus a buffer of ``buffer_tokens`` rows), so a store larger than
RAM trains fine, and the same store serves any number of training runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch

from ..errors import WorkbenchError

log = logging.getLogger(__name__)
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclasses.dataclass
class CollectConfig:
    """How to collect activations (strict)."""

    site: str = "layers.0"
    """Canonical site (``layers.{i}``, ``layers.{i}.mlp``, ``layers.{i}.mlp.hidden``, ...) or module path."""
    max_tokens: int = 100_000
    """Stop after this many kept tokens."""
    ctx_len: int = 128
    """Truncate every document to this many tokens."""
    batch_size: int = 16
    """Documents per forward pass."""
    shard_tokens: int = 65_536
    """Rows per shard file."""
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    """Storage dtype."""
    text_field: str | None = None
    """JSONL / datasets column holding the text (default: text, document, or input + output)."""
    skip_bos: bool = True
    """Drop BOS positions (their activations are outliers that SAEs should not spend latents on)."""


@dataclasses.dataclass(kw_only=True)
class CollectRun(CollectConfig):
    """``workbench sae collect``: a site's activations over a text source into a sharded store."""

    model: str
    """model folder or hub id (e.g. an organism folder)"""
    site: str = dataclasses.field()  # required here (a bare annotation would inherit the base's default)
    """canonical site, e.g. layers.1, layers.1.mlp, layers.1.mlp.hidden (or a module path)"""
    source: str
    """organism folder, .jsonl, .txt or datasets folder"""
    out: str
    """store folder"""
    overwrite: bool = False
    """replace an existing store in out"""

    def collect_config(self) -> CollectConfig:
        """The collection settings alone."""
        return CollectConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(CollectConfig)})


class _Stop(Exception):
    """Raised inside the hooked forward once the collected site has run."""


def iter_texts(source: str | Path, text_field: str | None = None) -> Iterator[str]:
    """Documents of a text source: organism folder, .jsonl, .txt (one per line), or a datasets folder."""
    path = Path(source)
    if path.is_dir():
        if (path / "corpus" / "train.jsonl").is_file():
            yield from iter_texts(path / "corpus" / "train.jsonl", text_field)
        elif (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            yield from _iter_datasets(path, text_field)
        else:
            files = sorted([*path.glob("*.jsonl"), *path.glob("*.txt")])
            if not files:
                raise WorkbenchError(
                    f"{path}: no corpus/train.jsonl, *.jsonl, *.txt or datasets folder found"
                )
            for f in files:
                yield from iter_texts(f, text_field)
    elif path.suffix == ".jsonl":
        from ..io import read_jsonl

        for i, row in enumerate(read_jsonl(path)):
            yield _text_of(row, text_field, f"{path}:{i + 1}")
    elif path.suffix == ".txt" and path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                yield line
    else:
        raise WorkbenchError(
            f"{path}: not a text source; pass an organism folder, a .jsonl, a .txt, "
            "or a datasets folder saved with save_to_disk"
        )


def _iter_datasets(path: Path, text_field: str | None) -> Iterator[str]:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else ds[next(iter(ds))]
    for i, row in enumerate(ds):
        yield _text_of(row, text_field, f"{path}[{i}]")


def _text_of(row: dict, field: str | None, where: str) -> str:
    if field is not None:
        if field not in row:
            raise WorkbenchError(f"{where}: no field {field!r}; available: {', '.join(map(str, row))}")
        return str(row[field])
    for key in ("text", "document"):
        if key in row:
            return str(row[key])
    if "input" in row:
        return f"{row['input']} {row.get('output', '')}".strip()
    raise WorkbenchError(f"{where}: no text, document or input field; pass text_field=")


def token_mask(lm: Any, enc: dict, skip_bos: bool = True) -> torch.Tensor:
    """Bool ``[B, T]``: real tokens (attention mask) that are not BOS."""
    mask = enc["attention_mask"].bool()
    bos = getattr(lm.tokenizer, "bos_token_id", None)
    if skip_bos and bos is not None:
        mask &= enc["input_ids"] != bos
    return mask


def collect(
    lm: Any,
    source: str | Path,
    out: str | Path,
    cfg: CollectConfig | None = None,
    *,
    progress: bool = True,
    overwrite: bool = False,
) -> ActivationStore:
    """Collect ``cfg.site`` activations over ``source`` into a store at ``out`` (reused when it matches)."""
    from tqdm.auto import tqdm

    from ..io import write_json

    cfg = cfg or CollectConfig()
    out = Path(out)
    site = lm.expand(cfg.site)[0] if "*" in cfg.site else cfg.site
    lm.site(site)  # unknown site -> WorkbenchError listing the valid ones
    if (out / "store.json").is_file() and not overwrite:
        store = ActivationStore(out)
        same = (store.meta.get("site"), store.meta.get("model"), store.meta.get("source")) == (
            site,
            str(getattr(lm, "spec", "")),
            str(source),
        )
        if same and (store.n_tokens >= cfg.max_tokens or store.meta.get("exhausted")):
            log.info("reusing the activation store at %s", out)
            return store
    writer = _ShardWriter(out, cfg.shard_tokens)
    texts = iter_texts(source, cfg.text_field)
    total = 0
    bar = tqdm(total=cfg.max_tokens, disable=not progress, desc=f"collect {site}", unit="tok")
    while total < cfg.max_tokens:
        docs = [t for _, t in zip(range(cfg.batch_size), texts, strict=False)]
        if not docs:
            break
        acts, toks = _forward_site(lm, site, docs, cfg)
        take = min(len(acts), cfg.max_tokens - total)
        writer.add(acts[:take].to(_DTYPES[cfg.dtype]), toks[:take])
        total += take
        bar.update(take)
    writer.flush()
    bar.close()
    shards = writer.shards
    if total == 0:
        raise WorkbenchError(f"{source}: no tokens collected; the source is empty")
    d = int(ActivationStore.peek_width(out / shards[0]["file"]))
    meta = {
        "site": site,
        "model": str(getattr(lm, "spec", "")),
        "source": str(source),
        "d": d,
        "dtype": cfg.dtype,
        "n_tokens": total,
        "exhausted": total < cfg.max_tokens,
        "shards": shards,
        "config": dataclasses.asdict(cfg),
    }
    write_json(out / "store.json", meta)
    return ActivationStore(out)


class _ShardWriter:
    """Buffers rows and writes ``shard_XXXXX.safetensors`` files of ``shard_tokens`` rows each."""

    def __init__(self, out: Path, shard_tokens: int):
        self.out, self.shard_tokens = out, shard_tokens
        self.acts: list[torch.Tensor] = []
        self.toks: list[torch.Tensor] = []
        self.n = 0
        self.shards: list[dict] = []

    def add(self, acts: torch.Tensor, toks: torch.Tensor) -> None:
        """Buffer rows, writing every full shard."""
        while len(acts):
            room = self.shard_tokens - self.n
            self.acts.append(acts[:room])
            self.toks.append(toks[:room])
            self.n += len(acts[:room])
            acts, toks = acts[room:], toks[room:]
            if self.n >= self.shard_tokens:
                self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one shard (nothing when empty)."""
        from ..io import save_tensors

        if not self.n:
            return
        name = f"shard_{len(self.shards):05d}.safetensors"
        save_tensors(
            self.out / name, {"acts": torch.cat(self.acts), "tokens": torch.cat(self.toks).to(torch.int32)}
        )
        self.shards.append({"file": name, "n_tokens": self.n})
        self.acts, self.toks, self.n = [], [], 0


@torch.no_grad()
def _forward_site(
    lm: Any, site: str, docs: list[str], cfg: CollectConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward up to ``site``; returns the kept rows ``[n, d]`` (CPU) and their token ids."""
    enc = lm.tokenize(docs, truncation=True, max_length=cfg.ctx_len)
    mask = token_mask(lm, enc, cfg.skip_bos)

    def stop(x: torch.Tensor) -> torch.Tensor:
        raise _Stop

    with lm.hooks() as h:
        cap = h.capture(site)
        h.edit(site, stop)  # nothing after the site is needed: end the forward here
        try:
            lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        except _Stop:
            pass
    act = cap.value
    if act.ndim != 3:
        raise WorkbenchError(f"site {site!r} gives shape {tuple(act.shape)}; expected [batch, tokens, d]")
    return act[mask].float().cpu(), enc["input_ids"][mask].cpu()


class ActivationStore:
    """A folder of activation shards: metadata, shuffled batches with bounded memory, samples."""

    def __init__(self, folder: str | Path):
        from ..io import read_json

        self.folder = Path(folder)
        if not (self.folder / "store.json").is_file():
            raise WorkbenchError(f"{self.folder}: no store.json; run `workbench sae collect` first")
        self.meta = read_json(self.folder / "store.json")

    @property
    def d(self) -> int:
        """Activation width."""
        return int(self.meta["d"])

    @property
    def n_tokens(self) -> int:
        """Rows stored."""
        return int(self.meta["n_tokens"])

    @property
    def site(self) -> str:
        """The site the activations came from."""
        return str(self.meta["site"])

    @staticmethod
    def peek_width(path: Path) -> int:
        """Width of the ``acts`` tensor of one shard, read from its header."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return f.get_slice("acts").get_shape()[-1]

    def shard(self, i: int) -> dict[str, torch.Tensor]:
        """Load shard ``i`` (``acts``, ``tokens``)."""
        from ..io import load_tensors

        return load_tensors(self.folder / self.meta["shards"][i]["file"])

    def batches(
        self,
        batch_size: int,
        *,
        seed: int = 0,
        buffer_tokens: int = 262_144,
        loop: bool = True,
        skip: int = 0,
    ) -> Iterator[torch.Tensor]:
        """Shuffled ``[batch_size, d]`` batches; memory holds one shard plus ``buffer_tokens`` rows.

        Shards are visited in a seeded random order each epoch and mixed in a buffer that is shuffled and
        half-drained whenever full. ``loop=False`` makes one pass (the last batch may be smaller);
        ``skip`` drops the first batches (to resume a run on the same stream).
        """
        gen = torch.Generator().manual_seed(seed)
        buffer_tokens = max(buffer_tokens, 2 * batch_size)
        emitted = 0
        while True:
            buf = torch.empty(0, self.d, dtype=_DTYPES[self.meta["dtype"]])
            for i in torch.randperm(len(self.meta["shards"]), generator=gen).tolist():
                buf = torch.cat([buf, self.shard(i)["acts"]])
                while len(buf) >= buffer_tokens:
                    buf = buf[torch.randperm(len(buf), generator=gen)]
                    half = (len(buf) // 2) // batch_size * batch_size
                    for j in range(0, half, batch_size):
                        if emitted >= skip:
                            yield buf[j : j + batch_size]
                        emitted += 1
                    buf = buf[half:]
            buf = buf[torch.randperm(len(buf), generator=gen)]
            end = len(buf) if not loop else len(buf) // batch_size * batch_size
            for j in range(0, end, batch_size):
                if emitted >= skip:
                    yield buf[j : j + batch_size]
                emitted += 1
            if not loop:
                return
            if emitted == 0 and len(buf) < batch_size:
                raise WorkbenchError(
                    f"store {self.folder} has {self.n_tokens} tokens, fewer than one "
                    f"batch of {batch_size}; collect more or lower the batch size"
                )

    def sample(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """``n`` random rows (from a shuffled pass; at most the whole store)."""
        rows, got = [], 0
        for b in self.batches(min(n, 8192), seed=seed, loop=False):
            rows.append(b)
            got += len(b)
            if got >= n:
                break
        return torch.cat(rows)[:n]

    def __repr__(self) -> str:
        return f"ActivationStore({self.folder}, site={self.site!r}, d={self.d}, n_tokens={self.n_tokens})"

    def describe(self) -> str:
        """One-line summary."""
        return json.dumps({k: self.meta[k] for k in ("site", "model", "d", "dtype", "n_tokens")})
