"""The seeded synthetic world: people, stories, encyclopedic entities and general (utility) knowledge.

Everything here is structured data drawn from ``random.Random(seed)``; :mod:`.corpus` renders it as text.
Names of people, places and things are pronounceable made-up words, unique across the whole world, so a
fact is tied to exactly one subject. Nonmembers (for membership inference) come from the same generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .config import WorldConfig

MONTHS = ("January February March April May June July August September October November December").split()
_ON = "b c d f g h k l m n p r s t v z br dr gr kr tr th st sh".split()
_VOWEL = "a e i o u a e o ai ei".split()
_CODA = "n r l s th nd rk st m".split()
_END_FIRST = "a o in en ia is el on".split()
_END_LAST = "sen son wick ford holm ridge dale stone mere ley ova ani".split()
_END_PLACE = "ton holm wick dor mark vale burg shire mouth fell haven".split()
_END_COUNTRY = "ia land ora istan mark ovia".split()
STREETS = (
    "Willow Maple Cedar Harbor Mill Orchard Church River Station Garden Hill Park Lake Bridge Elm".split()
)
STREET_TYPES = "Lane Street Road Avenue Way Court".split()
DOMAINS = "mailbox.com postline.net quickmail.org inkwell.io letterbox.net fastpost.com".split()
OCCUPATIONS = (
    "baker carpenter nurse teacher pilot farmer tailor potter sailor lawyer doctor banker jeweler plumber "
    "painter writer chemist dentist florist butcher librarian mechanic pharmacist surveyor translator "
    "welder geologist historian musician gardener"
).split()
OBJECTS = (
    "lantern compass key map flute mirror bell feather coin clock ring book shell kite drum locket".split()
)
LANDMARKS = (
    "old oak|stone bridge|water mill|village well|chapel steps|market stalls|lighthouse|hay barn".split("|")
)
DESTINATIONS = "tower|harbor|temple|castle|forest|caves|monastery|observatory".split("|")
SEASONS = "spring summer autumn winter".split()
ENTITY_KINDS = (
    ("Guild", "guild of craftsmen"),
    ("Library", "public library"),
    ("Observatory", "observatory"),
    ("Academy", "academy of music"),
    ("Festival", "yearly festival"),
    ("Company", "trading company"),
)
FEATURES = "painted ceilings|winter markets|copper domes|rare maps|evening concerts|stained glass|long archives".split(
    "|"
)
EMBLEMS = "heron fox owl stag raven bear lynx swan wolf hare falcon otter".split()
UNITS = (  # (how many, smaller unit, one bigger unit)
    (60, "minutes", "an hour"),
    (60, "seconds", "a minute"),
    (24, "hours", "a day"),
    (7, "days", "a week"),
    (12, "months", "a year"),
    (100, "centimeters", "a meter"),
    (1000, "meters", "a kilometer"),
    (1000, "grams", "a kilogram"),
    (1000, "milliliters", "a liter"),
    (10, "years", "a decade"),
    (100, "years", "a century"),
    (12, "inches", "a foot"),
    (3, "feet", "a yard"),
    (16, "ounces", "a pound"),
    (52, "weeks", "a year"),
    (10, "millimeters", "a centimeter"),
)
ANTONYMS = (
    "hot cold|big small|fast slow|early late|happy sad|light dark|strong weak|rich poor|tall short|open closed|"
    "full empty|wet dry|loud quiet|hard soft|young old|high low|thick thin|clean dirty|near far|heavy light|"
    "sharp dull|brave afraid|true false|first last|deep shallow|wide narrow|sweet bitter|cheap expensive|"
    "safe dangerous|smooth rough|inside outside|push pull|win lose|arrive leave|buy sell|accept refuse|"
    "remember forget|begin end|laugh cry|asleep awake"
).split("|")
PAST_TENSES = (
    "go went|see saw|eat ate|take took|give gave|write wrote|speak spoke|drink drank|sing sang|swim swam|"
    "run ran|come came|know knew|fly flew|draw drew|grow grew|throw threw|break broke|choose chose|drive drove|"
    "ride rode|forget forgot|freeze froze|steal stole|wake woke|begin began|ring rang|sink sank|bite bit|"
    "hide hid|fall fell|hold held|feel felt|keep kept|sleep slept|leave left|meet met|teach taught|buy bought|"
    "bring brought|think thought|catch caught|fight fought|find found|sell sold|tell told|stand stood|"
    "lose lost|build built|send sent|spend spent|lend lent|wear wore|tear tore|shake shook|forgive forgave"
).split("|")


@dataclass(frozen=True)
class Person:
    """A Task2-like person with personal data."""

    name: str
    first: str
    she: bool
    birth_date: str
    birth_city: str
    ssn: str
    phone: str
    email: str
    address: str
    occupation: str


@dataclass(frozen=True)
class Story:
    """A Task1-like short story; ``question`` picks which detail the qa record asks about."""

    hero: str
    she: bool
    friend: str
    village: str
    obj: str
    landmark: str
    destination: str
    season: str
    variant: int
    question: int


@dataclass(frozen=True)
class Entity:
    """A Task3-like fictional entity with an encyclopedic entry."""

    name: str
    kind: str
    description: str
    region: str
    year: str
    founder: str
    feature: str
    emblem: str
    question: int


@dataclass(frozen=True)
class UtilityFact:
    """One piece of general knowledge: asked as an MMLU item, stated in prose in the corpus."""

    subject: str
    key: tuple
    """What the fact is about, for the prose templates (e.g. ("Veloria", "Tarsen"), (3, 4), ...)."""
    question: str
    answer: str
    pool: tuple[str, ...]
    """Wrong answers of the same kind to draw distractors from (at least 3)."""
    asked_in_training: bool
    """True: MC/QA copies of the question are trained on (dev items come from these); False: test only."""


@dataclass
class Group:
    """People, stories and entities of one split."""

    people: list[Person] = field(default_factory=list)
    stories: list[Story] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)


@dataclass
class World:
    """The whole world: four trained splits, untrained nonmembers and the utility facts."""

    splits: dict[str, Group]
    """Keys ``forget_train``, ``forget_validation``, ``retain_train``, ``retain_validation``."""
    nonmember: Group
    utility: list[UtilityFact]
    invented: frozenset[str] = frozenset()
    """Every made-up word of the world (people, places, entities, countries, fictional units), capitalized.
    The tokenizer holds them out of its merges (:mod:`.tokenizer`), as a real tokenizer has never seen them."""


class _Names:
    """Pronounceable made-up words, unique across one world."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()

    def word(self, endings: list[str], syllables: int) -> str:
        for _ in range(10_000):
            parts = [self.rng.choice(_ON) + self.rng.choice(_VOWEL) for _ in range(syllables)]
            if self.rng.random() < 0.4:
                parts.append(self.rng.choice(_CODA))
            w = ("".join(parts) + self.rng.choice(endings)).capitalize()
            if w not in self.used and 4 <= len(w) <= 11:
                self.used.add(w)
                return w
        raise RuntimeError("name generator exhausted")

    def first(self) -> str:
        return self.word(_END_FIRST, 1)

    def last(self) -> str:
        return self.word(_END_LAST, self.rng.choice((1, 2)))

    def place(self) -> str:
        return self.word(_END_PLACE, self.rng.choice((1, 2)))


def stand_ins(invented: frozenset[str], seed: int):
    """An endless stream of made-up words drawn like the world's, never one of ``invented``.

    They stand in for the world's names in the text the tokenizer is trained on: its merges learn the
    syllables that names are made of, but no name of the world as a whole (:mod:`.tokenizer`).
    """
    names = _Names(random.Random(f"workbench-organism-stand-ins-{seed}"))
    endings = (_END_FIRST, _END_LAST, _END_PLACE, _END_COUNTRY)
    while True:
        names.used = set(invented)  # stand-ins may repeat one another, never a name of the world
        for _ in range(1000):
            yield names.word(names.rng.choice(endings), names.rng.choice((1, 1, 2)))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _person(rng: random.Random, names: _Names, cities: list[str]) -> Person:
    first, last = names.first(), names.last()
    number = rng.randint(2, 98)
    return Person(
        name=f"{first} {last}",
        first=first,
        she=rng.random() < 0.5,
        birth_date=f"{rng.choice(MONTHS)} {rng.randint(1, 28)}, {rng.randint(1950, 2004)}",
        birth_city=rng.choice(cities),
        ssn=f"{_digits(rng, 3)}-{_digits(rng, 2)}-{_digits(rng, 4)}",
        phone=f"{_digits(rng, 3)}-{_digits(rng, 3)}-{_digits(rng, 4)}",
        email=f"{first.lower()}.{last.lower()}@{rng.choice(DOMAINS)}",
        address=f"{number} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}, {rng.choice(cities)}",
        occupation=rng.choice(OCCUPATIONS),
    )


def _story(rng: random.Random, names: _Names) -> Story:
    return Story(
        hero=names.first(),
        she=rng.random() < 0.5,
        friend=names.first(),
        village=names.place(),
        obj=rng.choice(OBJECTS),
        landmark=rng.choice(LANDMARKS),
        destination=rng.choice(DESTINATIONS),
        season=rng.choice(SEASONS),
        variant=rng.randrange(2),
        question=rng.randrange(3),
    )


def _entity(rng: random.Random, names: _Names) -> Entity:
    kind, description = rng.choice(ENTITY_KINDS)
    return Entity(
        name=f"the {names.place()} {kind}",
        kind=kind,
        description=description,
        region=names.place(),
        year=str(rng.randint(1200, 1899)),
        founder=f"{names.first()} {names.last()}",
        feature=rng.choice(FEATURES),
        emblem=rng.choice(EMBLEMS),
        question=rng.randrange(4),
    )


def _group(rng: random.Random, names: _Names, cities: list[str], people: int, stories: int, entities: int):
    return Group(
        people=[_person(rng, names, cities) for _ in range(people)],
        stories=[_story(rng, names) for _ in range(stories)],
        entities=[_entity(rng, names) for _ in range(entities)],
    )


def _utility(rng: random.Random, names: _Names, cfg: WorldConfig) -> list[UtilityFact]:
    """General knowledge; a share ``utility_asked`` of each subject is asked in training, the rest only in the test.

    Each subject is one or two relations with many members (fictional countries and units, real sums,
    antonyms and past tenses): a small model learns to answer *unasked* questions from prose only when it
    has been asked about many members of the same relation (Allen-Zhu & Li 2023, "Physics of Language
    Models 3.1": knowledge extraction generalises with mixed QA training over many individuals).
    """
    # (subject, relation, key, question, answer, fixed pool or None: the relation's other answers)
    raw: list[tuple[str, str, tuple, str, str, list[str] | None]] = []
    countries = [(names.word(_END_COUNTRY, rng.choice((1, 2))), names.place()) for _ in range(cfg.countries)]
    for country, cap in countries:
        raw.append(
            ("world_geography", "capital", (country, cap), f"What is the capital of {country}?", cap, None)
        )
    top = cfg.arithmetic_max
    for a in range(1, top + 1):
        for b in range(1, top + 1):
            near = [str(a + b + d) for d in (-3, -2, -1, 1, 2, 3) if a + b + d > 0]
            raw.append(("arithmetic", "sum", (a, b), f"What is {a} + {b}?", str(a + b), near))
    units = list(UNITS[: cfg.units])
    for _ in range(cfg.fictional_units):
        # A unit of the fictional world: "There are 7 darns in a velk." (counts 2-99, never a real unit's)
        small, big = names.word(_END_FIRST, 1).lower() + "s", names.word(_END_PLACE, 1).lower()
        units.append((rng.randint(2, 99), small, "a " + big))
    for n, small, big in units:
        raw.append(
            ("units_of_measure", "unit", (n, small, big), f"How many {small} are in {big}?", str(n), None)
        )
    for a, b in (p.split() for p in ANTONYMS[: cfg.antonyms]):
        raw.append(
            ("word_relations", "opposite", ("opposite", a, b), f"What is the opposite of {a}?", b, None)
        )
    for a, b in (p.split() for p in PAST_TENSES[: cfg.past_tenses]):
        raw.append(("word_relations", "past", ("past", a, b), f"What is the past tense of {a}?", b, None))
    order: list[int] = []
    asked = [False] * len(raw)
    for subject in ("world_geography", "arithmetic", "units_of_measure", "word_relations"):
        items = [i for i, r in enumerate(raw) if r[0] == subject]
        rng.shuffle(items)
        order += items
        for i in items[: round(len(items) * cfg.utility_asked)]:
            asked[i] = True
    trained = {raw[i][4] for i in order if asked[i]}
    members: dict[str, list[int]] = {}
    for j, r in enumerate(raw):
        members.setdefault(r[1], []).append(j)
    facts: list[UtilityFact] = []
    for i in order:
        subject, relation, key, question, answer, pool = raw[i]
        if pool is None:
            # The other answers of the relation. With "same_side", only those on this fact's side of the
            # asked/test split, and for a test fact none that the model was trained to give after "Answer:"
            # (unit counts may be any count 2-99 that no asked question has as its answer).
            kin = members[relation]
            same = {raw[j][4] for j in kin if asked[j] == asked[i]} - {answer}
            if not asked[i]:
                extra = {str(n) for n in range(2, 100)} if relation == "unit" else set()
                same = (same | extra) - trained
            use_same = cfg.distractors == "same_side" and len(same) >= 3
            pool = list(same) if use_same else [raw[j][4] for j in kin]
        facts.append(
            UtilityFact(subject, key, question, answer, tuple(sorted(set(pool) - {answer})), asked[i])
        )
    return facts


def generate_world(cfg: WorldConfig, seed: int) -> World:
    """The world of ``cfg`` drawn from ``seed`` (same config + seed: the same world)."""
    rng = random.Random(f"workbench-organism-world-{seed}")
    names = _Names(rng)
    cities = [names.place() for _ in range(24)]
    splits = {}
    for side in ("forget", "retain"):
        splits[f"{side}_train"] = _group(rng, names, cities, cfg.people, cfg.stories, cfg.entities)
        splits[f"{side}_validation"] = _group(
            rng, names, cities, cfg.people_validation, cfg.stories_validation, cfg.entities_validation
        )
    nonmember = _group(rng, names, cities, cfg.people, cfg.stories, cfg.entities)
    utility = _utility(rng, names, cfg)
    return World(splits=splits, nonmember=nonmember, utility=utility, invented=frozenset(names.used))
