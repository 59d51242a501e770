"""Readers for the data formats users hand the workbench. One reader per format, shared by everyone.

- SemEval-2025 Task 4 unlearning data: records ``{id, input, output, task[, split]}`` as JSONL or parquet.
  Layouts: the organism's ``data/{forget,retain}_{train,validation}.jsonl``, and the public LUME files
  ``forget.jsonl`` / ``retain.jsonl`` (no ``split`` field: the file name is the split; ids carry stray
  quotes such as ``"8f24…"sc1``). The kind follows the official evaluation: ``id[:-1].endswith("sc")`` is
  sentence completion, ``id[:-1].endswith("qa")`` is question answering.
- Membership inference: ``member.jsonl`` / ``nonmember.jsonl`` with ``{id, document}``.
- MMLU: the original per-subject CSVs (``question,A,B,C,D,answer``, no header, in ``dev/`` and ``test/``),
  or JSONL ``{question, subject, choices, answer}`` (answer an index 0–3 or a letter).
- Trace facts: JSONL ``{prompt, subject, answer?}``, or SemEval QA records as they come (the subject is
  the question's first named entity, the answer the record's output; see :func:`record_facts`).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
from pathlib import Path

from .errors import WorkbenchError
from .io import read_jsonl

log = logging.getLogger(__name__)
SPLITS = ("forget", "retain")
PARTS = ("train", "validation")
TASKS = ("Task1", "Task2", "Task3")


@dataclasses.dataclass(frozen=True)
class SemEvalRecord:
    """One SemEval-2025 Task 4 record. ``split`` is forget|retain; ``part`` is train|validation|None."""

    id: str
    input: str
    output: str
    task: str
    split: str
    part: str | None = None

    @property
    def kind(self) -> str:
        """``sc`` (sentence completion) or ``qa``, by the official rule on the id."""
        return record_kind(self.id)


def record_kind(rid: str) -> str:
    """The official SemEval kind rule: ``id[:-1].endswith("sc")`` → sc, ``.endswith("qa")`` → qa."""
    head = rid[:-1]
    if head.endswith("sc"):
        return "sc"
    if head.endswith("qa"):
        return "qa"
    return "unknown"


def _read_rows(path: Path) -> list[dict]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return read_jsonl(path)


def _records(path: Path, split: str | None, part: str | None) -> list[SemEvalRecord]:
    out = []
    for i, row in enumerate(_read_rows(path), 1):
        missing = [k for k in ("id", "input", "output", "task") if k not in row]
        if missing:
            raise WorkbenchError(
                f"{path}:{i}: missing field(s) {', '.join(missing)}; each record needs id, input, output, task"
            )
        row_split = row.get("split") or split
        if row_split in PARTS:  # some layouts put train/validation in the split field
            row_split, part = split, part or row_split
        if row_split not in SPLITS:
            raise WorkbenchError(
                f"{path}:{i}: cannot tell forget from retain (split={row_split!r}); add a split field or "
                f"name the file forget*.jsonl / retain*.jsonl"
            )
        task = str(row["task"])
        if task not in TASKS:
            raise WorkbenchError(f"{path}:{i}: unknown task {task!r}; expected one of {', '.join(TASKS)}")
        rid = str(row["id"])
        if record_kind(rid) == "unknown":
            raise WorkbenchError(
                f"{path}:{i}: id {rid!r} ends neither in sc<N> nor qa<N>; the kind is read from the id"
            )
        out.append(SemEvalRecord(rid, str(row["input"]), str(row["output"]), task, row_split, part))
    return out


def _split_part(name: str) -> tuple[str | None, str | None]:
    stem = name.split(".")[0]
    split = next((s for s in SPLITS if stem.startswith(s)), None)
    part = next((p for p in PARTS if stem.endswith(p)), None)
    return split, part


def semeval_files(path: str | os.PathLike) -> list[Path]:
    """The SemEval data files under ``path`` (a file, a data folder, or a folder holding ``data/``)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise WorkbenchError(f"data path {path} does not exist; pass a SemEval data folder or file")
    for folder in (path / "data", path):
        files = sorted(
            f
            for f in folder.glob("*")
            if f.suffix in (".jsonl", ".parquet") and _split_part(f.name)[0] is not None
        )
        if files:
            return files
    raise WorkbenchError(
        f"{path}: no SemEval files found; expected forget/retain .jsonl or .parquet files "
        f"(e.g. forget_train.jsonl or forget.jsonl), here or in {path}/data"
    )


def read_semeval(
    path: str | os.PathLike,
    *,
    splits: tuple[str, ...] = SPLITS,
    part: str | None = None,
) -> list[SemEvalRecord]:
    """Read SemEval-layout records from a file or folder.

    ``part`` selects train|validation files when the layout has them (None: all). A requested split
    with no records is a WorkbenchError.
    """
    for s in splits:
        if s not in SPLITS:
            raise WorkbenchError(f"unknown split {s!r}; use forget and/or retain")
    records: list[SemEvalRecord] = []
    for f in semeval_files(path):
        split, file_part = _split_part(f.name)
        if part is not None and file_part is not None and file_part != part:
            continue
        records += [r for r in _records(f, split, file_part) if r.split in splits]
    for s in splits:
        if not any(r.split == s for r in records):
            where = f" ({part})" if part else ""
            raise WorkbenchError(f"{path}: the {s} split{where} is empty; check the data folder")
    return records


@dataclasses.dataclass(frozen=True)
class MIADoc:
    """A membership-inference document."""

    id: str
    document: str


def read_mia(path: str | os.PathLike) -> tuple[list[MIADoc], list[MIADoc]]:
    """Read ``member.jsonl`` and ``nonmember.jsonl`` from ``path`` or ``path/mia``."""
    path = Path(path)
    folder = path / "mia" if (path / "mia").is_dir() else path
    out = []
    for name in ("member.jsonl", "nonmember.jsonl"):
        f = folder / name
        if not f.is_file():
            raise WorkbenchError(f"{f} not found; MIA data needs member.jsonl and nonmember.jsonl")
        docs = []
        for i, row in enumerate(read_jsonl(f), 1):
            if "document" not in row:
                raise WorkbenchError(f"{f}:{i}: missing field 'document'")
            docs.append(MIADoc(str(row.get("id", i)), str(row["document"])))
        if not docs:
            raise WorkbenchError(f"{f} is empty; membership inference needs documents on both sides")
        out.append(docs)
    return out[0], out[1]


@dataclasses.dataclass(frozen=True)
class MMLUItem:
    """A four-way multiple-choice question; ``answer`` is the index 0–3."""

    question: str
    subject: str
    choices: tuple[str, ...]
    answer: int


def _answer_index(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().upper() in "ABCD" and len(value.strip()) == 1:
        return "ABCD".index(value.strip().upper())
    if isinstance(value, int) and 0 <= value <= 3:
        return value
    raise WorkbenchError(f"{where}: answer {value!r} must be A-D or an index 0-3")


def _mmlu_csv(f: Path) -> list[MMLUItem]:
    subject = f.stem.removesuffix("_test").removesuffix("_dev").removesuffix("_val")
    items = []
    with f.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.reader(fh), 1):
            if len(row) != 6:
                raise WorkbenchError(
                    f"{f}:{i}: expected 6 columns question,A,B,C,D,answer (no header), got {len(row)}"
                )
            if i == 1 and [c.strip().lower() for c in row[1:5]] == ["a", "b", "c", "d"]:
                raise WorkbenchError(f"{f}:1: MMLU CSVs have no header row; delete the header line")
            items.append(MMLUItem(row[0], subject, tuple(row[1:5]), _answer_index(row[5], f"{f}:{i}")))
    return items


def read_mmlu(path: str | os.PathLike, split: str = "test") -> list[MMLUItem]:
    """Read MMLU items: a JSONL file, a folder with ``{split}.jsonl`` (or ``utility/``), or per-subject CSVs."""
    path = Path(path)
    candidates = [path] if path.is_file() else [path / f"{split}.jsonl", path / "utility" / f"{split}.jsonl"]
    for f in candidates:
        if f.is_file() and f.suffix == ".jsonl":
            items = []
            for i, row in enumerate(read_jsonl(f), 1):
                missing = [k for k in ("question", "choices", "answer") if k not in row]
                if missing:
                    raise WorkbenchError(f"{f}:{i}: missing field(s) {', '.join(missing)}")
                if len(row["choices"]) != 4:
                    raise WorkbenchError(f"{f}:{i}: expected 4 choices, got {len(row['choices'])}")
                items.append(
                    MMLUItem(
                        str(row["question"]),
                        str(row.get("subject", "general")),
                        tuple(map(str, row["choices"])),
                        _answer_index(row["answer"], f"{f}:{i}"),
                    )
                )
            if not items:
                raise WorkbenchError(f"{f} is empty")
            return items
    csv_dir = path / split
    if csv_dir.is_dir():
        items = [it for f in sorted(csv_dir.glob("*.csv")) for it in _mmlu_csv(f)]
        if items:
            return items
    raise WorkbenchError(
        f"{path}: no MMLU data for split {split!r}; expected {split}.jsonl or a {split}/ folder of per-subject CSVs"
    )


@dataclasses.dataclass(frozen=True)
class Fact:
    """A fact to trace: the prompt, the subject inside it, and optionally the expected answer."""

    prompt: str
    subject: str
    answer: str | None = None


def read_facts(path: str | os.PathLike) -> list[Fact]:
    """Read trace facts: JSONL ``{prompt, subject, answer?}``, or a SemEval records file (JSONL/parquet).

    A file whose records carry ``id``/``input``/``output`` (the organism's ``data/*.jsonl``, LUME's
    ``forget.jsonl``) is read as SemEval data: its QA records become facts (:func:`record_facts`).
    """
    path = Path(path)
    if not path.is_file():
        raise WorkbenchError(f"facts file {path} does not exist; pass a JSONL of {{prompt, subject, answer}}")
    rows = _read_rows(path)
    if rows and "prompt" not in rows[0] and {"id", "input", "output"} <= set(rows[0]):
        return record_facts(rows, str(path))
    facts = []
    for i, row in enumerate(rows, 1):
        missing = [k for k in ("prompt", "subject") if not row.get(k)]
        if missing:
            raise WorkbenchError(
                f"{path}:{i}: missing field(s) {', '.join(missing)}; a fact needs prompt and subject"
            )
        facts.append(Fact(str(row["prompt"]), str(row["subject"]), row.get("answer")))
    if not facts:
        raise WorkbenchError(f"{path} holds no facts")
    return facts


_WORD = re.compile(r"\b[^\W\d_](?:[\w'’.-]*\w)?")
NOT_ENTITIES = frozenset(
    """Question Answer Q A An The This That These Those There Here It Its He She His Her Him They Their Them
    We Our You Your I My What Who Whom Whose Where When Which Why How In On At Of For From To By With As
    And But Or If Then One Late Once After Before During Later Soon Every Each All Some Many Today Yes No
    Social Security Number Phone Email Address Records Born""".split()
)
"""Capitalized words that are not entities: templates, question words, sentence-initial function words."""


def entity_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the named entities of ``text``: capitalized words outside :data:`NOT_ENTITIES`.

    A heuristic that needs no tagger: SemEval prompts name their subject (a person, a place, a story's
    characters) with capitalized words. A possessive ``'s`` is not part of the entity.
    """
    out = []
    for m in _WORD.finditer(text):
        word = m.group(0)
        if not word[0].isupper():
            continue
        for suffix in ("'s", "’s"):
            word = word.removesuffix(suffix)
        if word.rstrip(".") not in NOT_ENTITIES:
            out.append((m.start(), m.start() + len(word)))
    return out


def subject_of(text: str) -> str | None:
    """The subject a question names: its first run of adjacent named-entity words, or None.

    ``"What is Tiffi Magenta's Social Security Number?"`` -> ``"Tiffi Magenta"``; words joined only by
    spaces form one run (a person's first and last name), so ``"In the story of Ana from Kelholm, ..."``
    gives ``"Ana"``.
    """
    spans = entity_spans(text)
    if not spans:
        return None
    start, end = spans[0]
    for a, b in spans[1:]:
        if text[end:a] != " ":
            break
        end = b
    return text[start:end]


def default_facts(data: str | os.PathLike) -> str:
    """The facts a SemEval data folder traces by default: ``facts/forget.jsonl`` if it has one, else its
    first forget records file (whose QA records :func:`read_facts` turns into facts)."""
    written = Path(data) / "facts" / "forget.jsonl"
    if written.is_file():
        return str(written)
    forget = [f for f in semeval_files(data) if _split_part(f.name)[0] == "forget"]
    if not forget:
        raise WorkbenchError(
            f"{data}: no forget records to trace; pass facts: a JSONL of {{prompt, subject}}"
        )
    return str(forget[0])


def record_facts(records: list[dict], where: str = "records") -> list[Fact]:
    """Trace facts from SemEval QA records: prompt = ``input``, subject = :func:`subject_of`, answer = ``output``.

    Sentence-completion records and questions that name no entity are left out (logged); none left is an
    error. This is how a user's unlearning data (the LUME files as they are) becomes a trace fact set.
    """
    facts, no_entity = [], 0
    for row in records:
        if record_kind(str(row.get("id", ""))) != "qa":
            continue
        subject = subject_of(str(row["input"]))
        if subject is None:
            no_entity += 1
            continue
        facts.append(Fact(str(row["input"]), subject, str(row["output"])))
    if no_entity:
        log.warning("%s: %d QA record(s) name no entity and are not traced", where, no_entity)
    if not facts:
        raise WorkbenchError(
            f"{where}: no QA record names a subject (a capitalized name); trace a facts file of "
            "{prompt, subject, answer} instead"
        )
    return facts
