"""Edit requests in CounterFact's fields, read from JSONL or given as dicts.

A request is ``{prompt, subject, target_new, target_true?, paraphrase_prompts?, neighborhood_prompts?}``
plus the optional ``neighborhood_answers`` (one true answer per neighbourhood prompt: neighbourhood scoring
then compares P(its answer) with P(target_new) instead of P(target_true)) and ``generation_prompts``
(for the fluency metric). The prompt may name the subject (``"Ann Lee was born in"``) or hold CounterFact's
``{}`` placeholder (``"{} was born in"``). Targets without a leading space get one, as ROME does
(``rome/rome_main.py``: "Space required for correct tokenization"). Any other field (the organism's
``case_id``, ``side``, ``split``, ``relation``) is kept in :attr:`EditRequest.extra`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..io import read_jsonl

REQUIRED = ("prompt", "subject", "target_new")
LISTS = ("paraphrase_prompts", "neighborhood_prompts", "neighborhood_answers", "generation_prompts")


@dataclasses.dataclass(frozen=True)
class EditRequest:
    """One counterfactual edit: after it, ``prompt`` (naming ``subject``) should continue with ``target_new``."""

    prompt: str
    """The prompt with the subject written in (a ``{}`` placeholder is filled at reading)."""
    subject: str
    """The subject, a substring of the prompt; the edit is keyed on its last token."""
    target_new: str
    """The new continuation (with its leading space)."""
    target_true: str | None = None
    """The current continuation (efficacy compares P(new) with P(true))."""
    paraphrase_prompts: tuple[str, ...] = ()
    """Other prompts about the same subject and relation (generalisation)."""
    neighborhood_prompts: tuple[str, ...] = ()
    """Prompts about other subjects that the edit must leave alone (specificity)."""
    neighborhood_answers: tuple[str, ...] | None = None
    """The true answer of each neighbourhood prompt (default: ``target_true`` for all)."""
    generation_prompts: tuple[str, ...] = ()
    """Prompts for the fluency metric (default: the prompt and its paraphrases)."""
    extra: dict = dataclasses.field(default_factory=dict, compare=False)
    """Fields the request carried besides CounterFact's (kept as they are)."""

    def to_dict(self) -> dict:
        """The JSON form (CounterFact's field names, the extra fields first)."""
        out = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None or value == ():
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def describe(self) -> str:
        """``prompt -> target_new`` on one line."""
        return f"{self.prompt!r} -> {self.target_new!r}"


def leading_space(target: str) -> str:
    return target if target.startswith(" ") else " " + target


def _strings(value: Any, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise WorkbenchError(f"{where}: {key} must be a list of strings, got {type(value).__name__}")
    return tuple(str(v) for v in value)


def _fill(prompt: str, subject: str, key: str, where: str) -> str:
    if "{}" not in prompt:
        return prompt
    if prompt.count("{}") != 1:
        raise WorkbenchError(
            f"{where}: {key} {prompt!r} holds more than one '{{}}'; keep one for the subject"
        )
    return prompt.replace("{}", subject)


def as_request(row: Any, where: str) -> EditRequest:
    """Validate one request (an :class:`EditRequest` or a mapping); ``where`` names it in errors."""
    if isinstance(row, EditRequest):
        row = row.to_dict()
    if not isinstance(row, dict):
        raise WorkbenchError(f"{where} is a {type(row).__name__}; a request is a JSON object / dict")
    missing = [k for k in REQUIRED if k not in row or row[k] is None]
    if missing:
        raise WorkbenchError(
            f"{where}: missing field(s) {', '.join(missing)}; a request needs prompt, subject, target_new"
        )
    subject = str(row["subject"])
    if not subject.strip():
        raise WorkbenchError(f"{where}: the subject is empty; name the entity whose fact is edited")
    for key in ("target_new", "target_true"):
        if key in row and row[key] is not None and not str(row[key]).strip():
            raise WorkbenchError(f"{where}: {key} is empty; give the new/true continuation as text")
    prompt = _fill(str(row["prompt"]), subject, "prompt", where)
    if subject not in prompt:
        raise WorkbenchError(
            f"{where}: the subject {subject!r} does not occur in the prompt {prompt!r}; write it in (case "
            f"and spacing included) or use a '{{}}' placeholder"
        )
    lists = {k: _strings(row[k], k, where) for k in LISTS if row.get(k) is not None}
    paraphrases = tuple(_fill(p, subject, "paraphrase", where) for p in lists.get("paraphrase_prompts", ()))
    neighbours = lists.get("neighborhood_prompts", ())
    answers = lists.get("neighborhood_answers")
    if answers is not None:
        if len(answers) != len(neighbours):
            raise WorkbenchError(
                f"{where}: {len(answers)} neighborhood_answers for {len(neighbours)} neighborhood_prompts; "
                "give one answer per neighbour prompt"
            )
        if any(not a.strip() for a in answers):
            raise WorkbenchError(f"{where}: a neighborhood answer is empty")
        answers = tuple(leading_space(a) for a in answers)
    true = row.get("target_true")
    return EditRequest(
        prompt=prompt,
        subject=subject,
        target_new=leading_space(str(row["target_new"])),
        target_true=None if true is None else leading_space(str(true)),
        paraphrase_prompts=paraphrases,
        neighborhood_prompts=neighbours,
        neighborhood_answers=answers,
        generation_prompts=tuple(
            _fill(p, subject, "generation prompt", where) for p in lists.get("generation_prompts", ())
        ),
        extra={k: v for k, v in row.items() if k not in REQUIRED and k not in LISTS and k != "target_true"},
    )


def read_requests(path: str | os.PathLike) -> list[EditRequest]:
    """Read a JSONL file of requests (one-line errors name the file and line)."""
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "edits" / "requests.jsonl", path / "requests.jsonl"):
            if candidate.is_file():
                path = candidate
                break
    rows = read_jsonl(path)
    if not rows:
        raise WorkbenchError(f"{path} holds no edit requests; write one JSON object per line")
    return [as_request(row, f"{path}:{i}") for i, row in enumerate(rows, 1)]


def load_requests(requests: Any) -> list[EditRequest]:
    """Requests from a path (file, or a folder with ``edits/requests.jsonl``), or a list of requests/dicts."""
    if isinstance(requests, (str, os.PathLike)):
        return read_requests(requests)
    if isinstance(requests, (EditRequest, dict)):
        requests = [requests]
    if not isinstance(requests, Iterable):
        raise WorkbenchError(f"requests must be a path or a list of requests, not {type(requests).__name__}")
    out = [as_request(row, f"request #{i}") for i, row in enumerate(requests)]
    if not out:
        raise WorkbenchError("no edit requests given; pass at least one {prompt, subject, target_new}")
    return out
