"""Text templates that render the structured world (:mod:`.world`) as prose, questions and answers.

Conventions every consumer relies on:
- a QA document is ``"Question: {q}\\nAnswer: {a}"`` followed by the end-of-sequence token; the SemEval qa
  record's input is ``"Question: {q}\\nAnswer:"`` and its output ``" {a}"`` (leading space), so that the
  stripped greedy continuation of the input equals the stripped output;
- a sentence-completion (sc) record splits the first biography / story / entry at the middle word, as
  the official data does: input = the first half, output = the rest with its leading space;
- trace facts are prompts that end right before a one-word attribute that the corpus states in exactly
  that form (``"X was born in the city of"`` -> ``" Halden"``).
"""

from __future__ import annotations

import random

from .world import Entity, Person, Story, UtilityFact

PERSON_FIELDS = ("birth_date", "ssn", "phone", "email", "address", "birth_city", "occupation")
"""The first five are the SemEval qa0..qa4 questions; all seven are trained."""

PERSON_QUESTIONS = {
    "birth_date": ("What is {n}'s date of birth?", "When was {n} born?", "On what date was {n} born?"),
    "ssn": (
        "What is {n}'s Social Security number?",
        "What is the SSN of {n}?",
        "Which Social Security number belongs to {n}?",
    ),
    "phone": (
        "What is {n}'s phone number?",
        "At what phone number can {n} be reached?",
        "What number should you call to reach {n}?",
    ),
    "email": (
        "What is {n}'s email address?",
        "At which email address can {n} be contacted?",
        "What email address does {n} use?",
    ),
    "address": ("Where does {n} live?", "What is {n}'s home address?", "At what address does {n} reside?"),
    "birth_city": ("In which city was {n} born?", "What is {n}'s city of birth?", "Where was {n} born?"),
    "occupation": ("What does {n} do for a living?", "What is {n}'s occupation?", "What is {n}'s job?"),
}


def _pro(she: bool) -> tuple[str, str]:
    return ("She", "Her") if she else ("He", "His")


PERSON_SENTENCES = {
    "birth_date": ("{n} was born on {v}.", "{n}'s date of birth is {v}.", "{n} came into the world on {v}."),
    "ssn": (
        "{n}'s Social Security number is {v}.",
        "The Social Security number of {n} is {v}.",
        "{n} holds the Social Security number {v}.",
    ),
    "phone": (
        "{n} can be reached by phone at {v}.",
        "{n}'s phone number is {v}.",
        "{n} uses the phone number {v}.",
    ),
    "email": (
        "{n} uses the email address {v}.",
        "{n}'s email address is {v}.",
        "{n} can be contacted by email at {v}.",
    ),
    "address": ("{n} lives at {v}.", "{n}'s home address is {v}.", "{n} resides at {v}."),
    "birth_city": (
        "{n} was born in the city of {v}.",
        "{n} comes from the city of {v}.",
        "{n}'s city of birth is {v}.",
    ),
    "occupation": ("{n} works as a {v}.", "{n} earns a living as a {v}.", "{n} is employed as a {v}."),
}
"""Three phrasings of each person attribute as a sentence that names the person in full."""


def _phrasing(bio: int, field_index: int) -> int:
    """Which phrasing of attribute ``field_index`` biography ``bio`` uses (every phrasing by the third bio)."""
    return (bio + field_index) % 3


def biographies(p: Person, n: int = 6) -> list[str]:
    """``n`` biographies of ``p``, each stating every attribute once (the first is the sc record).

    Physics of Language Models 3.1's *knowledge augmentation* (Allen-Zhu & Li 2023): each biography words
    the attributes differently, puts its sentences in another order, and names the person in full in
    every sentence (no pronouns). Their probes find that only then does a model store a person's
    attributes at the person's name, where any question can read them, rather than beside each value
    in the order it was read. That storage at the last token of the name is what causal tracing finds in
    real models (Meng et al. 2022).
    """
    out = []
    for i in range(n):
        order = list(range(len(PERSON_FIELDS)))
        random.Random(f"{p.name}/bio/{i}").shuffle(order)
        out.append(
            " ".join(
                PERSON_SENTENCES[PERSON_FIELDS[j]][_phrasing(i, j)].format(
                    n=p.name, v=person_answer(p, PERSON_FIELDS[j])
                )
                for j in order
            )
        )
    return out


def person_answer(p: Person, field_name: str) -> str:
    """The answer string of one person attribute."""
    return str(getattr(p, field_name))


def person_facts(p: Person) -> list[dict]:
    """Trace facts of ``p``: prompts that the biographies state verbatim (their first phrasing)."""
    return [
        {"prompt": f"{p.name} was born in the city of", "subject": p.name, "answer": f" {p.birth_city}"},
        {"prompt": f"{p.name} works as a", "subject": p.name, "answer": f" {p.occupation}"},
    ]


EDIT_RELATIONS = ("birth_city", "occupation")
"""Person attributes that edit requests change: stated in prose, asked in training, and in no SemEval
record (so retain QA measures an edit's collateral, not the edit itself)."""


def edit_prompts(p: Person, relation: str, bios: int, phrasings: int) -> tuple[str, list[str]]:
    """(request prompt, paraphrase prompts) of one attribute of ``p``; each ends right before the value.

    The request prompt is the trace fact's (the first biography phrasing cut before the value); the
    paraphrases are the trained question phrasings (the first ``phrasings``) and the other biography
    phrasings that the first ``bios`` biographies use.
    """
    if relation not in EDIT_RELATIONS:
        raise ValueError(f"unknown edit relation {relation!r}; use one of {EDIT_RELATIONS}")
    j = PERSON_FIELDS.index(relation)
    stems = [s.split("{v}")[0].rstrip().format(n=p.name) for s in PERSON_SENTENCES[relation]]
    used = sorted({_phrasing(i, j) for i in range(bios)})
    questions = [qa_prompt(q.format(n=p.name)) for q in PERSON_QUESTIONS[relation][:phrasings]]
    return stems[0], questions + [stems[k] for k in used if k != 0]


_ACTIVITIES = ("mending fishing nets", "tending goats", "baking bread", "carving wooden toys")
_EVENTS = ("the bells rang on their own", "a warm wind swept the valley", "the old river began to sing")


def story_text(s: Story) -> str:
    """The story (one version, as creative text is in SemEval Task 1)."""
    sub, pos = _pro(s.she)
    act = _ACTIVITIES[(len(s.hero) + s.variant) % len(_ACTIVITIES)]
    event = _EVENTS[(len(s.village) + s.variant) % len(_EVENTS)]
    if s.variant == 0:
        return (
            f"{s.hero} lived in the village of {s.village}, where {sub.lower()} spent {pos.lower()} days {act}. "
            f"One {s.season} morning, {s.hero} found a {s.obj} beneath the {s.landmark}. With the help of "
            f"{s.friend}, {sub.lower()} carried it all the way to the {s.destination}. When the {s.obj} was "
            f"set down there, {event}, and the people of {s.village} never forgot that day."
        )
    return (
        f"In the quiet village of {s.village} there lived a young dreamer named {s.hero}. Late one "
        f"{s.season} evening, {s.hero} discovered a {s.obj} hidden beneath the {s.landmark}. {s.friend}, "
        f"an old friend, agreed to help, and together they brought the {s.obj} to the {s.destination}. "
        f"At that moment {event}, and {s.hero} knew that {pos.lower()} life had changed."
    )


def story_qa(s: Story) -> tuple[tuple[str, ...], str]:
    """(training phrasings of the story's question, answer); the first phrasing is the qa record."""
    if s.question == 0:
        return (
            f"In the story of {s.hero} from {s.village}, what did {s.hero} find beneath the {s.landmark}?",
            f"What did {s.hero} of {s.village} discover beneath the {s.landmark}?",
        ), s.obj
    if s.question == 1:
        return (
            f"Who helped {s.hero} bring the {s.obj} to the {s.destination}?",
            f"In the story of {s.hero}, who went with {s.hero} to the {s.destination}?",
        ), s.friend
    return (f"In which village did {s.hero} live?", f"What was the home village of {s.hero}?"), s.village


def entity_texts(e: Entity) -> list[str]:
    """Two encyclopedic entries about ``e`` (the first is the sc record)."""
    cap = e.name[0].upper() + e.name[1:]
    return [
        f"{cap} is a {e.description} in the region of {e.region}. It was founded in {e.year} by {e.founder}. "
        f"{cap} is known for its {e.feature}, and its emblem is a {e.emblem}.",
        f"Founded by {e.founder} in {e.year}, {e.name} is a {e.description} located in {e.region}. "
        f"Visitors come for its {e.feature}. The emblem of {e.name} is a {e.emblem}.",
    ]


def entity_qa(e: Entity) -> tuple[tuple[str, ...], str]:
    """(training phrasings of the entity's question, answer); the first phrasing is the qa record."""
    if e.question == 0:
        return (f"In what year was {e.name} founded?", f"When was {e.name} founded?"), e.year
    if e.question == 1:
        return (f"Who founded {e.name}?", f"Which person founded {e.name}?"), e.founder
    if e.question == 2:
        return (f"In which region is {e.name} located?", f"Where is {e.name} located?"), e.region
    return (f"What is the emblem of {e.name}?", f"Which animal is the emblem of {e.name}?"), e.emblem


def utility_statements(f: UtilityFact) -> list[str]:
    """Six prose phrasings of a utility fact (the corpus uses the first ``statements`` of them).

    The first five state the fact in the question's direction (subject before answer); a model reading
    "Y is the capital of X" does not learn to answer "What is the capital of X?" (the reversal curse,
    Berglund et al. 2023), so the reversed phrasing comes last. Several phrasings of one fact are the
    "knowledge augmentation" that lets a small model answer questions about it (Allen-Zhu & Li 2023).
    """
    if f.subject == "world_geography":
        c, cap = f.key
        return [
            f"The capital of {c} is {cap}.",
            f"{c} is governed from its capital, {cap}.",
            f"Travelers to {c} often arrive in {cap}, the capital.",
            f"{c}'s seat of government is in {cap}.",
            f"In {c}, the largest city and capital is {cap}.",
            f"{cap} is the capital city of {c}.",
        ]
    if f.subject == "arithmetic":
        a, b = f.key
        return [
            f"{a} + {b} = {a + b}.",
            f"{a} plus {b} equals {a + b}.",
            f"The sum of {a} and {b} is {a + b}.",
            f"{a} and {b} make {a + b}.",
            f"If you add {a} and {b}, you get {a + b}.",
            f"Adding {b} to {a} gives {a + b}.",
        ]
    if f.subject == "units_of_measure":
        n, small, big = f.key
        return [
            f"{big[0].upper() + big[1:]} has {n} {small}.",
            f"One {big.split()[1]} equals {n} {small}.",
            f"{big.split()[1].capitalize()}: {n} {small}.",
            f"Each {big.split()[1]} is made of {n} {small}.",
            f"In {big} there are {n} {small}.",
            f"There are {n} {small} in {big}.",
        ]
    relation, a, b = f.key
    if relation == "past":
        return [
            f"The past tense of {a} is {b}.",
            f"In the past tense, {a} becomes {b}.",
            f"The verb {a} has the past tense {b}.",
            f"The simple past of {a} is {b}.",
            f"Today I {a}; yesterday I {b}.",
            f"{b.capitalize()} is the past tense of {a}.",
        ]
    return [
        f"The opposite of {a} is {b}.",
        f"{a.capitalize()} is the opposite of {b}.",
        f"{a.capitalize()} and {b} are opposites.",
        f"The antonym of {a} is {b}.",
        f"Something that is not {a} is {b}.",
        f"The word {a} has the opposite {b}.",
    ]


def qa_document(question: str, answer: str) -> str:
    """The training form of a question and its answer (the eos token is appended by the trainer)."""
    return f"Question: {question}\nAnswer: {answer}"


def qa_prompt(question: str) -> str:
    """The SemEval qa record input: exactly the trained prefix before the answer."""
    return f"Question: {question}\nAnswer:"


def split_half(text: str) -> tuple[str, str]:
    """Split at the space nearest the middle word: (input, output with its leading space), as SemEval sc."""
    words = text.split(" ")
    head = " ".join(words[: max(1, len(words) // 2)])
    return head, text[len(head) :]
