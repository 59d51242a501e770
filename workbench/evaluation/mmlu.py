"""MMLU through lm-eval (Hendrycks et al. 2021; EleutherAI lm-evaluation-harness).

Two paths, one scoring: lm-eval's own ``mmlu`` task definition (``lm_eval/tasks/mmlu/default``: prompt
``"{question}\\nA. ..\\nD. ..\\nAnswer:"`` after the subject description, choices ``A``-``D`` scored by
log-likelihood, metric ``acc``, few-shot examples = the first k items of ``dev``).

- **online** (``source="mmlu"`` or any lm-eval MMLU task/group name): lm-eval's built-in tasks, which
  download ``cais/mmlu`` from the hub.
- **offline** (``source`` = a local path): the same evaluation over local files, either MMLU's original
  per-subject CSVs (``dev/``, ``test/``; ``question,A,B,C,D,answer``, no header) or MMLU-format JSONL
  (the organism's ``utility/{test,dev}.jsonl``). The files are rewritten per subject into a temporary
  folder with one task YAML per subject that ``include``-s lm-eval's own MMLU template and only swaps the
  dataset for the local JSON files; lm-eval runs them through
  ``TaskManager(include_path=..., include_defaults=False)`` with an in-memory ``HFLM``.

Two formulations (OLMES, Gu et al. 2024, arXiv:2406.08446): ``"mcf"`` is lm-eval's ``mmlu`` (above);
``"cf"`` (cloze) is lm-eval's ``mmlu_continuation`` (``lm_eval/tasks/mmlu/continuation``): prompt
``"Question: {question}\nAnswer:"`` after ``"The following are questions (with answers) about
{subject}."``, each choice's text scored by log-likelihood, metric ``acc``. Small models answer MCF at
chance before they learn the letter format, so the organism's utility is read in CF.

Reported: accuracy per subject, the macro average (mean over subjects) and the micro average (over
questions; lm-eval's ``mmlu`` group number, which weights subjects by size).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tempfile
from pathlib import Path

from ..data import MMLUItem, read_mmlu
from ..errors import WorkbenchError
from .scoring import check_formulation, description_line

log = logging.getLogger(__name__)

TASK_PREFIX = "wbmmlu_"


@dataclasses.dataclass(frozen=True)
class SubjectScore:
    """Accuracy on one subject."""

    subject: str
    n: int
    acc: float


@dataclasses.dataclass
class MMLUResult:
    """Per-subject accuracy and the macro / micro averages."""

    subjects: list[SubjectScore]
    num_fewshot: int
    source: str
    formulation: str = "mcf"

    @property
    def macro(self) -> float:
        """Mean of the per-subject accuracies."""
        return sum(s.acc for s in self.subjects) / len(self.subjects)

    @property
    def micro(self) -> float:
        """Accuracy over all questions (subjects weighted by size)."""
        return sum(s.acc * s.n for s in self.subjects) / sum(s.n for s in self.subjects)

    @property
    def acc(self) -> float:
        """The headline accuracy: the micro average, as lm-eval's ``mmlu`` group reports it."""
        return self.micro

    def metrics(self) -> dict[str, float | int | str]:
        """A flat dict for ``metrics.json``."""
        out: dict[str, float | int | str] = {
            "acc": self.acc,
            "macro": self.macro,
            "micro": self.micro,
            "num_fewshot": self.num_fewshot,
            "formulation": self.formulation,
            "source": self.source,
            "n": sum(s.n for s in self.subjects),
        }
        out.update({f"subject/{s.subject}": s.acc for s in self.subjects})
        return out


_TEMPLATES = {
    "mcf": ("default", "_default_template_yaml"),
    "cf": ("continuation", "_continuation_template_yaml"),
}


def _template(formulation: str = "mcf") -> Path:
    import lm_eval

    folder, name = _TEMPLATES[formulation]
    path = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / folder / name
    if not path.is_file():
        raise WorkbenchError(
            f"lm-eval's MMLU template is missing ({path}); reinstall lm_eval from constraints.txt"
        )
    return path


def _slug(subject: str) -> str:
    slug = re.sub(r"[^0-9A-Za-z_]+", "_", subject.strip()).strip("_").lower()
    return slug or "general"


def _by_subject(items: list[MMLUItem]) -> dict[str, list[MMLUItem]]:
    groups: dict[str, list[MMLUItem]] = {}
    for it in items:
        groups.setdefault(it.subject, []).append(it)
    return groups


def _rows(items: list[MMLUItem]) -> list[dict]:
    return [
        {"question": x.question, "subject": x.subject, "choices": list(x.choices), "answer": x.answer}
        for x in items
    ]


def write_tasks(
    test: list[MMLUItem],
    dev: list[MMLUItem],
    folder: str | os.PathLike,
    num_fewshot: int = 0,
    formulation: str = "mcf",
) -> dict[str, str]:
    """Write per-subject JSONL files and lm-eval task YAMLs into ``folder``; returns {task name: subject}.

    Each YAML includes lm-eval's own MMLU template (``mcf``: ``mmlu``; ``cf``: ``mmlu_continuation``;
    prompt, choices, ``first_n`` few-shot sampler over ``dev``) and points ``dataset_path: json`` at the
    local files.
    """
    import yaml

    from ..io import write_jsonl, write_text

    check_formulation(formulation)
    folder = Path(folder)
    template = _template(formulation)
    dev_by = _by_subject(dev)
    tasks: dict[str, str] = {}
    for subject, items in sorted(_by_subject(test).items()):
        name = TASK_PREFIX + _slug(subject)
        if name in tasks:
            raise WorkbenchError(f"MMLU subjects {tasks[name]!r} and {subject!r} map to the same task name")
        shots = dev_by.get(subject, [])
        if num_fewshot > len(shots):
            raise WorkbenchError(
                f"{num_fewshot}-shot MMLU needs {num_fewshot} dev items for subject {subject!r}, found "
                f"{len(shots)}; add them to dev/ (or dev.jsonl) or lower num_fewshot"
            )
        test_file = write_jsonl(folder / name / "test.jsonl", _rows(items))
        dev_file = write_jsonl(folder / name / "dev.jsonl", _rows(shots)) if shots else test_file
        config = {
            "include": str(template),
            "task": name,
            "task_alias": subject,
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {
                "data_files": {"test": str(test_file.resolve()), "dev": str(dev_file.resolve())}
            },
            "description": description_line(subject, formulation),
        }
        write_text(folder / f"{name}.yaml", yaml.safe_dump(config, sort_keys=False))
        tasks[name] = subject
    return tasks


def _hflm(lm, batch_size: int):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size)


def _run(
    lm, task_names: list[str], task_manager, *, num_fewshot: int, batch_size: int, limit: int | None
) -> dict:
    import datasets
    from lm_eval import simple_evaluate

    # lm-eval warns about every in-memory model and k-shot override: expected here, so keep it quiet
    lm_log = logging.getLogger("lm_eval")
    level, bars = lm_log.level, datasets.is_progress_bar_enabled()
    lm_log.setLevel(logging.ERROR)
    datasets.disable_progress_bars()
    try:
        res = simple_evaluate(
            model=_hflm(lm, batch_size),
            tasks=task_names,
            num_fewshot=num_fewshot,
            task_manager=task_manager,
            limit=limit,
            bootstrap_iters=0,
            log_samples=False,
        )
    finally:
        lm_log.setLevel(level)
        if bars:
            datasets.enable_progress_bars()
    if res is None:
        raise WorkbenchError("lm-eval returned no results (non-zero rank?); run MMLU in a single process")
    return res


def _scores(res: dict, names: dict[str, str]) -> list[SubjectScore]:
    out = []
    for name, subject in names.items():
        if name not in res["results"]:
            continue
        n = int(res["n-samples"][name]["effective"])
        out.append(SubjectScore(subject, n, float(res["results"][name]["acc,none"])))
    if not out:
        raise WorkbenchError("lm-eval produced no MMLU subject scores; check the task names")
    return out


def evaluate_mmlu(
    lm,
    source: str | os.PathLike = "mmlu",
    *,
    num_fewshot: int = 0,
    batch_size: int = 8,
    limit: int | None = None,
    formulation: str = "mcf",
) -> MMLUResult:
    """MMLU accuracy of ``lm`` through lm-eval: online task name, or a local folder/file (offline).

    ``source``: ``"mmlu"`` (or another lm-eval MMLU task/group) for the hub data; a folder holding
    ``test/`` and ``dev/`` CSVs, ``test.jsonl``/``dev.jsonl`` or ``utility/``; or one JSONL file
    (0-shot only). ``limit`` caps the questions per subject (lm-eval's ``limit``). ``formulation``:
    ``"mcf"`` (answer letters, lm-eval ``mmlu``) or ``"cf"`` (choice texts, ``mmlu_continuation``).
    """
    check_formulation(formulation)
    if num_fewshot < 0:
        raise WorkbenchError(f"num_fewshot={num_fewshot} must be >= 0")
    path = Path(source)
    if not path.exists() and os.sep not in str(source) and not str(source).startswith("."):
        return _online(
            lm,
            str(source),
            num_fewshot=num_fewshot,
            batch_size=batch_size,
            limit=limit,
            formulation=formulation,
        )
    if not path.exists():
        raise WorkbenchError(
            f"MMLU data {source} does not exist; pass a folder with test/ and dev/ CSVs or JSONL"
        )
    test = read_mmlu(path, "test")
    if path.is_file():
        if num_fewshot:
            raise WorkbenchError(f"{path}: k-shot MMLU needs dev items; pass a folder with dev/ or dev.jsonl")
        dev: list[MMLUItem] = []
    else:
        dev = _read_dev(path) if num_fewshot else _read_dev(path, required=False)
    from lm_eval.tasks import TaskManager

    with tempfile.TemporaryDirectory(prefix="wb-mmlu-") as tmp:
        names = write_tasks(test, dev, tmp, num_fewshot, formulation)
        manager = TaskManager(include_path=tmp, include_defaults=False)
        res = _run(lm, list(names), manager, num_fewshot=num_fewshot, batch_size=batch_size, limit=limit)
    return MMLUResult(_scores(res, names), num_fewshot, str(source), formulation)


def _read_dev(path: Path, required: bool = True) -> list[MMLUItem]:
    try:
        return read_mmlu(path, "dev")
    except WorkbenchError:
        if required:
            raise
        return []


def _online(
    lm, task: str, *, num_fewshot: int, batch_size: int, limit: int | None, formulation: str = "mcf"
) -> MMLUResult:
    from lm_eval.tasks import TaskManager

    if not task.startswith("mmlu"):
        raise WorkbenchError(f"MMLU source {task!r} is neither a local path nor an lm-eval mmlu task name")
    if formulation == "cf" and task == "mmlu":
        task = "mmlu_continuation"  # lm-eval's cloze group
    manager = TaskManager()
    try:
        res = _run(lm, [task], manager, num_fewshot=num_fewshot, batch_size=batch_size, limit=limit)
    except (OSError, ConnectionError, ValueError) as e:
        raise WorkbenchError(
            f"lm-eval could not load {task!r} ({str(e).splitlines()[0][:120]}); offline, pass a local MMLU "
            f"folder (test/ and dev/ CSVs) instead"
        ) from None
    leaves = {
        name: name.removeprefix("mmlu_").removesuffix("_continuation")
        for name in res["configs"]
        if name in res["n-samples"]
    }
    return MMLUResult(_scores(res, leaves), num_fewshot, task, formulation)
