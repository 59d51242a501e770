"""The organism's world and corpus without training: utility relations, cloze documents, repeats."""

from __future__ import annotations

import collections
import dataclasses

import pytest

from workbench.errors import WorkbenchError
from workbench.evaluation.scoring import description_line
from workbench.organism import templates as T
from workbench.organism.config import WorldConfig
from workbench.organism.corpus import build_corpus
from workbench.organism.world import PAST_TENSES, UNITS, generate_world

SMALL = dict(
    people=2, people_validation=1, stories=1, stories_validation=1, entities=1, entities_validation=1
)


def _corpus(**world):
    cfg = WorldConfig(**{**SMALL, **world})
    return cfg, generate_world(cfg, 0), build_corpus(generate_world(cfg, 0), cfg, 0)


def test_relations_sizes_and_split():
    cfg, world, _ = _corpus(
        countries=30, arithmetic_max=11, units=8, fictional_units=12, antonyms=10, past_tenses=14
    )
    count = collections.Counter(f.subject for f in world.utility)
    assert count == {"world_geography": 30, "arithmetic": 121, "units_of_measure": 20, "word_relations": 24}
    relations = collections.Counter(f.key[0] for f in world.utility if f.subject == "word_relations")
    assert relations == {"opposite": 10, "past": 14}
    fictional = [f for f in world.utility if f.subject == "units_of_measure" and f.key[1:] not in
                 {(s, b) for _, s, b in UNITS}]  # fmt: skip
    assert len(fictional) == 12 and all(f.key[1].islower() and f.key[2].startswith("a ") for f in fictional)
    for subject, n in count.items():
        asked = sum(f.asked_in_training for f in world.utility if f.subject == subject)
        assert asked == round(n * cfg.utility_asked)
    for f in world.utility:
        assert f.answer not in f.pool and len(f.pool) >= 3


def test_test_questions_never_trained_and_stated_forward():
    _, world, corpus = _corpus(
        countries=20, fictional_units=6, past_tenses=10, mc_variants=0, cloze_variants=2, statements=5
    )
    text = "\n".join(corpus.documents)
    for item in corpus.utility_test:
        assert item["question"] not in text
    subject_of = {"world_geography": lambda k: k[0], "arithmetic": lambda k: f"{k[0]} ", "word_relations": lambda k: k[1],
                  "units_of_measure": lambda k: k[2].split()[1]}  # fmt: skip
    for f in world.utility:
        # the trained phrasings (statements=5) name the subject before the answer, as the question does
        for s in T.utility_statements(f)[:5]:
            assert s in text
            subject = subject_of[f.subject](f.key)
            assert s.lower().index(subject.lower()) < s.rindex(f.answer), s
    cloze = [d for d in corpus.documents if d.startswith("The following are questions")]
    asked = [f for f in world.utility if f.asked_in_training]
    assert sum(d.count("Question: ") for d in cloze) == 2 * len(asked)
    for d in cloze:
        subject = d.split(" about ")[1].split(".")[0].replace(" ", "_")
        assert d.startswith(description_line(subject, "cf"))
        assert "\nA. " not in d  # cloze, not letters
    assert not any("\nA. " in d for d in corpus.documents)  # mc_variants=0: no letter documents


def test_utility_repeats_multiply_only_utility_documents():
    _, _, one = _corpus(countries=10, utility_repeats=1)
    _, _, three = _corpus(countries=10, utility_repeats=3)
    c1, c3 = collections.Counter(one.documents), collections.Counter(three.documents)
    statement = next(d for d in one.documents if d.startswith("The capital of "))
    assert c3[statement] == 3 * c1[statement]
    bio = one.documents[0]  # a biography (the groups come first): not repeated
    assert c3[bio] == c1[bio]
    assert one.utility_test == three.utility_test


def test_past_tense_list_and_bounds():
    assert len(PAST_TENSES) == 56 and all(len(p.split()) == 2 for p in PAST_TENSES)
    for bad in (dict(past_tenses=57), dict(fictional_units=-1), dict(arithmetic_max=13), dict(utility_repeats=0), dict(utility_repeats=9),
                dict(cloze_variants=9), dict(mc_variants=-1), dict(statements=7), dict(statements=0)):  # fmt: skip
        with pytest.raises(WorkbenchError):
            WorldConfig(**bad)
    assert dataclasses.replace(WorldConfig(), mc_variants=0).mc_variants == 0


def test_test_distractors_are_never_trained_answers():
    """distractors="same_side": a test item's wrong choices are answers the model never gave after "Answer:"
    (sums excepted: every nearby number is a trained sum); "relation" keeps the same world and split."""
    world_cfg = dict(countries=24, fictional_units=10, past_tenses=12, mc_variants=0, cloze_variants=1)
    cfg, world, corpus = _corpus(**world_cfg)
    assert cfg.distractors == "same_side"
    trained = {f.answer for f in world.utility if f.asked_in_training}
    by_question = {f.question: f for f in world.utility}
    for item in corpus.utility_test:
        wrong = set(item["choices"]) - {item["choices"][item["answer"]]}
        assert len(wrong) == 3
        if item["subject"] != "arithmetic":
            assert not wrong & trained, item
        assert not by_question[item["question"]].asked_in_training
    for item in corpus.utility_dev:  # asked items draw from the asked side
        if item["subject"] != "arithmetic":
            assert set(item["choices"]) <= trained, item
    _, old, old_corpus = _corpus(**world_cfg, distractors="relation")
    assert [(f.key, f.asked_in_training) for f in old.utility] == [
        (f.key, f.asked_in_training) for f in world.utility
    ]
    assert any(set(it["choices"]) & trained - {it["choices"][it["answer"]]} for it in old_corpus.utility_test
               if it["subject"] == "world_geography")  # fmt: skip
    with pytest.raises(WorkbenchError, match="distractors"):
        WorldConfig(distractors="random")
