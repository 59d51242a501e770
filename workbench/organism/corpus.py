"""The world as files in the layouts real users have, plus the training documents.

- SemEval-2025 Task 4: ``data/{forget,retain}_{train,validation}.jsonl``, records ``{id, input, output,
  task, split}``; ids are ``<uuid>sc1`` / ``<uuid>qa0..qa4`` (one uuid per person / story / entity).
  Validation people, stories and entities are separate from the train ones and are trained on too (in
  SemEval the model was fine-tuned on both splits), so the model knows them.
- Membership inference: ``mia/member.jsonl`` = the forget-train records as documents (input + output),
  ``mia/nonmember.jsonl`` = the same records of never-trained people / stories / entities.
- MMLU: ``utility/{dev,test}.jsonl`` ``{question, subject, choices, answer}``; test questions are never
  trained in question form (their facts are stated in prose only), dev items are.
- Trace facts: ``facts/{forget,retain}.jsonl`` ``{prompt, subject, answer}``.
- ``corpus/train.jsonl``: every training document ``{text}`` (the trainer appends the eos token).
- Knowledge editing: ``edits/requests.jsonl``, CounterFact's fields ``{case_id, prompt, subject,
  target_new, target_true, paraphrase_prompts, neighborhood_prompts}`` plus ``neighborhood_answers``,
  ``side``, ``split`` and ``relation`` (see :func:`edit_requests`).
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .. import io
from ..evaluation.scoring import LETTERS, description_line, mc_prompt
from . import templates as T
from .config import WorldConfig
from .world import Group, UtilityFact, World, stand_ins

SUBJECTS = ("world_geography", "arithmetic", "units_of_measure", "word_relations")


@dataclass
class Corpus:
    """Every file's rows and the training documents of one world."""

    documents: list[str]
    records: dict[str, list[dict]]
    mia_member: list[dict]
    mia_nonmember: list[dict]
    utility_dev: list[dict]
    utility_test: list[dict]
    facts: dict[str, list[dict]]
    edits: list[dict] = field(default_factory=list)
    """Counterfactual edit requests (CounterFact's fields) about retain people: ``edits/requests.jsonl``."""
    invented: frozenset[str] = frozenset()
    """The world's made-up words (see :attr:`World.invented`)."""
    seed: int = 0

    def tokenizer_texts(self) -> list[str]:
        """Texts the BPE is trained on: the training and nonmember documents, names replaced by stand-ins.

        The tokenizer plays the part of a pretrained one. A real tokenizer has never seen this world's
        names and splits them into subword pieces (``" Theibaridge"`` -> ``" The|ib|ar|idge"``); the organism
        needs that split, because assembling a name's pieces is the step that causal tracing localizes at
        the last subject token (early MLPs; Meng et al. 2022, Geva et al. 2023). So every made-up word is
        replaced by a fresh stand-in word from the same syllable generator (never a name of the world):
        the merges learn the syllables and the contexts names occur in, not the names themselves.
        """
        texts = self.documents + [r["document"] for r in self.mia_nonmember]
        if not self.invented:
            return texts
        fresh = stand_ins(self.invented, self.seed)
        pattern = re.compile(
            r"\b(" + "|".join(map(re.escape, sorted(self.invented, key=len, reverse=True))) + r")(s?)\b",
            re.IGNORECASE,
        )

        def swap(m: re.Match) -> str:
            word = next(fresh)
            return (word if m.group(1)[0].isupper() else word.lower()) + m.group(2)

        return [pattern.sub(swap, t) for t in texts]


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _record(uid: str, kind: str, text_in: str, text_out: str, task: str, split: str) -> dict:
    return {"id": f"{uid}{kind}", "input": text_in, "output": text_out, "task": task, "split": split}


def group_records(group: Group, split: str, rng: random.Random) -> list[dict]:
    """SemEval records of one group: per person sc1 + qa0..qa4, per story / entity sc1 + qa0."""
    rows = []
    for p in group.people:
        uid = _uid(rng)
        head, tail = T.split_half(T.biographies(p)[0])
        rows.append(_record(uid, "sc1", head, tail, "Task2", split))
        for k, field_name in enumerate(T.PERSON_FIELDS[:5]):
            question = T.PERSON_QUESTIONS[field_name][0].format(n=p.name)
            answer = " " + T.person_answer(p, field_name)
            rows.append(_record(uid, f"qa{k}", T.qa_prompt(question), answer, "Task2", split))
    for s in group.stories:
        uid = _uid(rng)
        head, tail = T.split_half(T.story_text(s))
        questions, answer = T.story_qa(s)
        rows.append(_record(uid, "sc1", head, tail, "Task1", split))
        rows.append(_record(uid, "qa0", T.qa_prompt(questions[0]), " " + answer, "Task1", split))
    for e in group.entities:
        uid = _uid(rng)
        head, tail = T.split_half(T.entity_texts(e)[0])
        questions, answer = T.entity_qa(e)
        rows.append(_record(uid, "sc1", head, tail, "Task3", split))
        rows.append(_record(uid, "qa0", T.qa_prompt(questions[0]), " " + answer, "Task3", split))
    return rows


def group_documents(group: Group, cfg: WorldConfig) -> list[str]:
    """Training documents of one group: paraphrased prose plus every question in every phrasing."""
    docs = []
    for p in group.people:
        docs += T.biographies(p, cfg.bio_paraphrases)
        for field_name in T.PERSON_FIELDS:
            answer = T.person_answer(p, field_name)
            docs += [
                T.qa_document(q.format(n=p.name), answer)
                for q in T.PERSON_QUESTIONS[field_name][: cfg.qa_phrasings]
            ]
    for s in group.stories:
        questions, answer = T.story_qa(s)
        docs += [T.story_text(s)] + [T.qa_document(q, answer) for q in questions]
    for e in group.entities:
        questions, answer = T.entity_qa(e)
        docs += T.entity_texts(e) + [T.qa_document(q, answer) for q in questions]
    return docs


def edit_requests(world: World, cfg: WorldConfig, seed: int, neighbours: int = 5) -> list[dict]:
    """Counterfactual edit requests in CounterFact's fields, one per trained person and edit relation.

    ``target_new`` is another value of the same type from the world (a city, an occupation);
    ``paraphrase_prompts`` are the other trained phrasings; ``neighborhood_prompts`` ask the same relation
    of other trained people (an edit should leave them alone): first those whose true value is the same
    ``target_true`` (CounterFact's choice), then others, each with its own true value in
    ``neighborhood_answers``. ``side`` tells forget people from retain people; editing benchmarks use the
    retain side unless told otherwise.
    """
    rng = random.Random(f"workbench-organism-edits-{seed}")
    people = [(name, p) for name, g in world.splits.items() for p in g.people]
    values = {
        "birth_city": sorted(
            {p.birth_city for g in [*world.splits.values(), world.nonmember] for p in g.people}
        ),
        "occupation": sorted({p.occupation for _, p in people}),
    }
    rows = []
    for name, p in people:
        for relation in T.EDIT_RELATIONS:
            true = T.person_answer(p, relation)
            prompt, paraphrases = T.edit_prompts(p, relation, cfg.bio_paraphrases, cfg.qa_phrasings)
            same = [q for _, q in people if q is not p and T.person_answer(q, relation) == true]
            other = [q for _, q in people if T.person_answer(q, relation) != true]
            kin = (rng.sample(same, len(same)) + rng.sample(other, len(other)))[:neighbours]
            near = [T.edit_prompts(q, relation, 1, 0)[0] for q in kin]
            rows.append(
                {
                    "case_id": len(rows),
                    "side": name.split("_")[0],
                    "split": name.split("_")[1],
                    "relation": relation,
                    "prompt": prompt,
                    "subject": p.name,
                    "target_true": " " + true,
                    "target_new": " " + rng.choice([v for v in values[relation] if v != true]),
                    "paraphrase_prompts": paraphrases,
                    "neighborhood_prompts": near,
                    "neighborhood_answers": [" " + T.person_answer(q, relation) for q in kin],
                }
            )
    return rows


def mc_item(fact: UtilityFact, position: int, rng: random.Random) -> dict:
    """The MMLU item of ``fact``: three distractors drawn from its pool, the answer at ``position`` (0-3)."""
    choices = rng.sample(fact.pool, 3)
    choices.insert(position, fact.answer)
    return {"question": fact.question, "subject": fact.subject, "choices": choices, "answer": position}


def mc_block(item: dict, with_answer: bool = True) -> str:
    """lm-eval's MMLU rendering of one item (``doc_to_text`` + ``" " + letter`` when answered)."""
    text = mc_prompt(item, description=False)
    return text + (f" {LETTERS[item['answer']]}" if with_answer else "")


def _packs(pool: list, rng: random.Random):
    """Shuffle ``pool`` and yield it in consecutive packs of 1-3 (lazily: callers draw from ``rng`` between)."""
    rng.shuffle(pool)
    while pool:
        take = pool[: rng.choice((1, 2, 3))]
        pool = pool[len(take) :]
        yield take


def _mc_documents(items: list[dict], rng: random.Random) -> list[str]:
    """Pack answered items into zero- and few-shot lm-eval style documents (1-3 items, same subject)."""
    docs = []
    for subject in SUBJECTS:
        for take in _packs([it for it in items if it["subject"] == subject], rng):
            body = "\n\n".join(mc_block(it) for it in take)
            docs.append((description_line(subject) if rng.random() < 0.75 else "") + body)
    return docs


def _cloze_documents(facts: list[UtilityFact], rng: random.Random) -> list[str]:
    """Asked facts in lm-eval's ``mmlu_continuation`` few-shot layout: the cloze description line, then
    1-3 ``Question: ...\nAnswer: <answer>`` blocks of one subject separated by blank lines."""
    docs = []
    for subject in SUBJECTS:
        for take in _packs([f for f in facts if f.subject == subject], rng):
            body = "\n\n".join(T.qa_document(f.question, f.answer) for f in take)
            docs.append(description_line(subject, "cf") + body)
    return docs


def _utility(facts: list[UtilityFact], cfg: WorldConfig, rng: random.Random):
    """(training documents, dev items, test items) of the utility knowledge."""
    docs = [s for f in facts for s in T.utility_statements(f)[: cfg.statements]]
    asked = [f for f in facts if f.asked_in_training]
    answered = []
    for f in asked:
        positions = [p for _ in range(0, cfg.mc_variants, 4) for p in rng.sample(range(4), 4)]
        answered += [mc_item(f, position, rng) for position in positions[: cfg.mc_variants]]
        docs.append(T.qa_document(f.question, f.answer))
    docs += _mc_documents(answered, rng)
    for _ in range(cfg.cloze_variants):
        docs += _cloze_documents(asked, rng)
    docs = docs * cfg.utility_repeats
    dev_facts = []
    for subject in SUBJECTS:
        pool = [f for f in asked if f.subject == subject]
        dev_facts += rng.sample(pool, min(5, len(pool)))
    test_facts = [f for f in facts if not f.asked_in_training]
    return docs, _balanced(dev_facts, rng), _balanced(test_facts, rng)


def _balanced(facts: list[UtilityFact], rng: random.Random) -> list[dict]:
    """MC items whose correct letters are as evenly spread over A-D as the count allows."""
    positions = [i % 4 for i in range(len(facts))]
    rng.shuffle(positions)
    return [mc_item(f, p, rng) for f, p in zip(facts, positions)]


def build_corpus(world: World, cfg: WorldConfig, seed: int) -> Corpus:
    """Render ``world`` into records, documents and file rows (deterministic given ``seed``)."""
    rng = random.Random(f"workbench-organism-corpus-{seed}")
    records = {name: group_records(group, name.split("_")[1], rng) for name, group in world.splits.items()}
    documents = [d for group in world.splits.values() for d in group_documents(group, cfg)]
    utility_docs, dev, test = _utility(world.utility, cfg, rng)
    documents += utility_docs
    nonmember_records = group_records(world.nonmember, "train", rng)
    facts = {
        side: [
            f
            for name in (f"{side}_train", f"{side}_validation")
            for p in world.splits[name].people
            for f in T.person_facts(p)
        ]
        for side in ("forget", "retain")
    }
    return Corpus(
        edits=edit_requests(world, cfg, seed),
        invented=world.invented,
        seed=seed,
        documents=documents,
        records=records,
        mia_member=[{"id": r["id"], "document": r["input"] + r["output"]} for r in records["forget_train"]],
        mia_nonmember=[{"id": r["id"], "document": r["input"] + r["output"]} for r in nonmember_records],
        utility_dev=dev,
        utility_test=test,
        facts=facts,
    )


def write_corpus(corpus: Corpus, root: str | Path) -> None:
    """Write every data file of ``corpus`` under ``root`` (atomic writes)."""
    root = Path(root)
    for name, rows in corpus.records.items():
        io.write_jsonl(root / "data" / f"{name}.jsonl", rows)
    io.write_jsonl(root / "mia" / "member.jsonl", corpus.mia_member)
    io.write_jsonl(root / "mia" / "nonmember.jsonl", corpus.mia_nonmember)
    io.write_jsonl(root / "utility" / "dev.jsonl", corpus.utility_dev)
    io.write_jsonl(root / "utility" / "test.jsonl", corpus.utility_test)
    for side, rows in corpus.facts.items():
        io.write_jsonl(root / "facts" / f"{side}.jsonl", rows)
    io.write_jsonl(root / "corpus" / "train.jsonl", [{"text": d} for d in corpus.documents])
    io.write_jsonl(root / "edits" / "requests.jsonl", corpus.edits)
