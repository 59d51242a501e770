"""Build (or reuse) an organism: world -> files -> tokenizer -> trained OLMo-2 -> scorecard.

The finished folder lives in ``cache_dir()/organism/<preset>-<hash12>``, where the hash covers the
resolved config, the seed and :data:`FORMAT_VERSION`. It is built in a temporary sibling folder and
renamed into place, under a file lock, so concurrent builders wait for one another and a crash never
leaves a half-built organism behind; training checkpoints (``.<name>.checkpoints``) survive a kill, so
the next build of the same config resumes training where it stopped. The folder root is a Hugging Face
model folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import io
from ..errors import WorkbenchError
from .card import Scorecard, evaluate
from .config import FORMAT_VERSION, OrganismConfig, resolve

log = logging.getLogger(__name__)
REQUIRED = ("config.json", "model.safetensors", "card.json", "organism.yaml", "data/forget_train.jsonl")


@dataclass
class Organism:
    """A built organism: its folder (an HF model folder plus data), scorecard and config."""

    path: Path
    card: Scorecard
    config: OrganismConfig
    preset: str
    seed: int
    key: str
    """The 12-hex-digit config hash that names the cache folder."""


def config_hash(config: OrganismConfig, seed: int) -> str:
    """12 hex digits identifying (config, seed, format version)."""
    blob = json.dumps({"format": FORMAT_VERSION, "seed": seed, "config": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def folder_name(preset: str, seed: int = 0) -> str:
    """The cache folder name of ``preset`` at ``seed`` under its *current* config (``<preset>-<hash>``)."""
    return f"{preset}-{config_hash(resolve(preset), seed)}"


def cached(preset: str, seed: int = 0) -> Path | None:
    """The cached build of ``preset`` at ``seed`` under its *current* config, or None when not built yet.

    Older builds of the same preset (another config hash) are never returned: they hold another world.
    """
    path = io.cache_dir() / "organism" / folder_name(preset, seed)
    return path if (path / "card.json").is_file() else None


def info(path: str | Path) -> Organism:
    """Read a built organism folder (a WorkbenchError says so when ``path`` is not one)."""
    path = Path(path)
    if not path.is_dir():
        raise WorkbenchError(f"{path}: no such folder; build one with `workbench organism build`")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise WorkbenchError(
            f"{path} is not an organism folder (missing {', '.join(missing)}); "
            "build one with `workbench organism build`"
        )
    meta = yaml.safe_load((path / "organism.yaml").read_text(encoding="utf-8")) or {}
    if meta.get("format") != FORMAT_VERSION:
        raise WorkbenchError(
            f"{path}: organism format {meta.get('format')!r}, this workbench reads "
            f"{FORMAT_VERSION!r}; rebuild it with `workbench organism build --force`"
        )
    return Organism(
        path=path,
        card=Scorecard.from_dict(io.read_json(path / "card.json")),
        config=OrganismConfig.from_dict(meta["config"]),
        preset=str(meta["preset"]),
        seed=int(meta["seed"]),
        key=str(meta["key"]),
    )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (POSIX ``flock``); a no-op where fcntl does not exist."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build_into(
    folder: Path,
    preset: str,
    config: OrganismConfig,
    seed: int,
    key: str,
    progress: bool,
    checkpoints: Path | None = None,
) -> None:
    """Generate, train and score an organism inside ``folder`` (which then holds every file).

    Training checkpoints go to ``checkpoints`` (outside ``folder``), so that a killed build resumes there.
    """
    from .corpus import build_corpus, write_corpus
    from .tokenizer import train_tokenizer
    from .train import train_model
    from .world import generate_world

    start = time.perf_counter()
    world = generate_world(config.world, seed)
    corpus = build_corpus(world, config.world, seed)
    write_corpus(corpus, folder)
    log.info("organism %s: %d training documents; training the tokenizer", preset, len(corpus.documents))
    tokenizer = train_tokenizer(corpus.tokenizer_texts(), config.model.vocab_size, held_out=corpus.invented)
    model, stats = train_model(
        config, tokenizer, corpus.documents, seed=seed, progress=progress, checkpoints=checkpoints
    )
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    log.info("organism %s: scoring", preset)
    scores = evaluate(model, tokenizer, folder, progress=progress)
    card = Scorecard(
        **scores,
        params=sum(p.numel() for p in model.parameters()),
        build_seconds=time.perf_counter() - start,
        train_seconds=stats.seconds,
        train_tokens=stats.tokens,
        tokens_per_second=stats.tokens_per_second,
    )
    card.details["train/final_loss"] = stats.final_loss
    io.write_json(folder / "card.json", card)
    meta = {"format": FORMAT_VERSION, "preset": preset, "seed": seed, "key": key, "config": config.to_dict()}
    io.write_text(folder / "organism.yaml", yaml.safe_dump(meta, sort_keys=False))


def _place(source: Path, out: Path, key: str, force: bool) -> Path:
    """Copy the finished organism to ``out`` (atomically); an existing non-organism folder is refused."""
    if out.exists():
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        else:
            try:
                existing = info(out)
            except WorkbenchError:
                raise WorkbenchError(
                    f"--out {out} exists and is not an organism folder; choose a new path"
                ) from None
            if existing.key == key and not force:
                return out
            shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, 0o755)
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@dataclasses.dataclass
class BuildRun:
    """``workbench organism build``: build (or reuse the cached) organism and print its scorecard."""

    preset: str = "default"
    """a preset of workbench.organism.PRESETS (tiny: tests, about a minute; default: the embedded default)"""
    seed: int = 0
    """the world's and the training's seed"""
    out: str | None = None
    """also place the finished folder here"""
    force: bool = False
    """rebuild even when cached (and replace an organism already at out)"""


def build(
    preset: str = BuildRun.preset,
    *,
    seed: int = BuildRun.seed,
    out: str | Path | None = None,
    force: bool = BuildRun.force,
    progress: bool = True,
) -> Organism:
    """Build the organism of ``preset`` and ``seed``, or reuse the cached one; optionally copy it to ``out``.

    ``force`` rebuilds even when a cached folder exists (and replaces an organism already at ``out``).
    """
    config = resolve(preset)
    key = config_hash(config, seed)
    root = io.cache_dir() / "organism"
    final = root / folder_name(preset, seed)
    checkpoints = root / f".{final.name}.checkpoints"  # a killed build resumes from here
    with _locked(root / f".{final.name}.lock"):
        if force:
            shutil.rmtree(checkpoints, ignore_errors=True)
        if final.exists() and force:
            shutil.rmtree(final)
        if final.exists():
            log.info("organism %s (seed %d): reusing %s", preset, seed, final)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
            os.chmod(tmp, 0o755)
            try:
                _build_into(tmp, preset, config, seed, key, progress, checkpoints)
                os.rename(tmp, final)
                shutil.rmtree(checkpoints, ignore_errors=True)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            log.info("organism %s (seed %d): built %s", preset, seed, final)
    path = final if out is None else _place(final, Path(out), key, force)
    return info(path)
