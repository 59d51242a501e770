"""The organism's tokenizer splits the world's made-up names like a real tokenizer splits rare names."""

from __future__ import annotations

import collections

import pytest

from workbench.organism.config import WorldConfig
from workbench.organism.corpus import build_corpus
from workbench.organism.tokenizer import train_tokenizer
from workbench.organism.world import generate_world

CFG = WorldConfig(people=12, people_validation=2, stories=4, stories_validation=1, entities=4,
                  entities_validation=1, countries=20)  # fmt: skip


@pytest.fixture(scope="module")
def built():
    world = generate_world(CFG, 3)
    corpus = build_corpus(world, CFG, 3)
    tok = train_tokenizer(corpus.tokenizer_texts(), 1024, held_out=corpus.invented)
    return world, corpus, tok


def _n(tok, text: str) -> int:
    return len(tok(text, add_special_tokens=False)["input_ids"])


def test_no_name_of_the_world_is_a_single_token(built):
    world, corpus, tok = built
    people = [p for g in [*world.splits.values(), world.nonmember] for p in g.people]
    assert {p.first for p in people} | {p.name.split()[1] for p in people} <= corpus.invented
    for word in corpus.invented:
        for form in (word, " " + word, word.lower(), " " + word.lower()):
            assert _n(tok, form) >= 2, form
    # a person's full name takes several pieces, as GPT-2 or OLMo would split a rare name
    pieces = collections.Counter(_n(tok, " " + p.name) for p in people)
    assert min(pieces) >= 4


def test_names_are_not_in_the_tokenizer_text_but_the_template_words_are(built):
    world, corpus, _ = built
    texts = corpus.tokenizer_texts()
    joined = "\n".join(texts)
    person = world.splits["forget_train"].people[0]
    assert person.name not in joined and person.name in "\n".join(corpus.documents)
    assert joined.count(" was born in the city of ") == "\n".join(
        corpus.documents + [r["document"] for r in corpus.mia_nonmember]
    ).count(" was born in the city of ")
    assert len(texts) == len(corpus.documents) + len(corpus.mia_nonmember)


def test_digits_one_per_token_and_real_words_whole(built):
    _, _, tok = built
    assert _n(tok, " 123-45-6789") == 1 + 11  # the space, nine digits, two dashes
    assert _n(tok, " was born in the city of") == 6


def test_without_held_out_names_the_corpus_bpe_makes_names_single_tokens(built):
    """The failure this tokenizer fixes: a BPE trained on the raw corpus, where names repeat."""
    world, corpus, _ = built
    raw = train_tokenizer(corpus.documents, 1024)
    person = world.splits["forget_train"].people[0]
    assert _n(raw, " " + person.name.split()[1]) <= 2


def test_edit_requests_follow_counterfact(built):
    world, corpus, _ = built
    rows = corpus.edits
    people = sum(len(g.people) for g in world.splits.values())
    assert len(rows) == 2 * people
    assert [r["case_id"] for r in rows] == list(range(len(rows)))
    for r in rows:
        assert r["subject"] in r["prompt"] and r["target_new"] != r["target_true"]
        assert r["target_new"].startswith(" ") and r["target_true"].startswith(" ")
        assert all(r["subject"] in p for p in r["paraphrase_prompts"])
        assert r["prompt"] not in r["paraphrase_prompts"] and len(r["paraphrase_prompts"]) >= 3
        assert len(r["neighborhood_prompts"]) == len(r["neighborhood_answers"]) == 5
        assert all(r["subject"] not in p for p in r["neighborhood_prompts"])
        assert r["side"] in ("forget", "retain") and r["relation"] in ("birth_city", "occupation")
    # each prompt ends right before a value the corpus states in exactly that form
    text = "\n".join(corpus.documents)
    for r in rows:
        assert r["prompt"] + r["target_true"] in text or r["relation"] == "occupation"
        assert any(p + r["target_true"] in text for p in r["paraphrase_prompts"] if "Question" not in p)
