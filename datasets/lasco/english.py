"""Small English lexicon and morphology for the rule rephraser: enough to turn a VQA question
and its answer into a statement, without a parser or a model."""

from __future__ import annotations

import re

from coir.datasets.lasco.normalize import normalize_answer


def _w(text: str) -> frozenset[str]:
    return frozenset(text.split())


BE = frozenset({"is", "are", "was", "were"})
DO = frozenset({"do", "does", "did"})
MODAL = frozenset({"can", "could", "will", "would", "should", "has", "have", "had", "may", "might", "must"})
AUX = BE | DO | MODAL
PRONOUN_SUBJECTS = _w(
    "he she it they you we i there someone somebody anyone anybody everyone everybody something anything "
    "nothing nobody"
)
DEMONSTRATIVES = frozenset({"this", "that", "these", "those"})
DETERMINERS = _w(
    "a an the this that these those his her their its my your our some any no every each both all several "
    "many few"
)
PREPOSITIONS = _w(
    "on in at under near behind above below beside besides between by with without for from to into onto "
    "over inside outside next through around across along against toward towards up down off out about "
    "like during after before past beneath underneath atop upon within"
)
COLORS = _w(
    "red blue green yellow white black brown orange purple pink gray grey silver gold tan beige navy "
    "maroon teal cyan magenta"
)
ADJECTIVES = COLORS | _w(
    "empty full open closed clean dirty wet dry big small large tall short long old new young happy sad "
    "hot cold warm cool sunny cloudy rainy snowy foggy dark bright real fake safe dangerous healthy fresh "
    "ripe raw asleep awake alive dead visible available busy crowded straight curved round square flat "
    "smooth soft hard heavy sharp shiny striped plain colorful same different ready ok okay good bad nice "
    "pretty beautiful ugly funny cute fast slow high low deep shallow wooden metal plastic calm rough "
    "natural sliced whole vertical horizontal level upright electric digital broken present single "
    "double tiny huge giant male female alone together hungry tired sleepy"
)
COMPARATIVES = _w(
    "bigger smaller larger taller shorter closer higher lower older younger longer faster slower heavier "
    "lighter brighter darker wider thicker thinner further farther nearer cleaner dirtier better worse "
    "more less biggest smallest largest tallest shortest closest highest lowest oldest youngest longest "
    "fastest best worst"
)
IRREGULAR_PARTICIPLES = _w(
    "made worn held built written shown seen drawn taken done given eaten hung set put lit laid sold kept "
    "broken frozen grown known thrown blown ridden driven hidden stuck sewn spread shut torn sunk stolen "
    "spoken bent burnt chosen fallen flown forgotten gone hurt lost paid sat shot slept split stood struck "
    "swept swollen taught told understood woken won cut being"
)
NOT_ING = _w(
    "ceiling building clothing thing something nothing anything everything king ring wing string spring "
    "morning evening awning sibling icing frosting topping railing bedding pudding wedding dressing sling "
    "swing ping sing bling ling viking lightning painting ceiling stuffing filling siding"
)
NOT_ED = _w("hundred seed speed feed weed sled shed bed red bread")
BASE_VERBS = _w(
    "have look like need see say read show contain hold wear want eat play use make go appear seem match "
    "belong fit serve run allow come taste face lead move point mean represent feel stand sit live work "
    "sell carry cover get take know think own stop open indicate cost weigh smell sound bring provide "
    "require support keep help hang fly ride drive travel enjoy love prefer offer display advertise "
    "celebrate do call grow swim cross block reflect signal tell warn protect spell fall sleep exist "
    "happen stay wash cook hit throw catch watch wait lay lie rest turn say hear give"
)
# Answers that read wrong with "a"/"an" in front of them.
NO_ARTICLE = COLORS | _w(
    "yes no none nothing water grass food snow sand rice pizza bread meat milk coffee tea beer wine juice "
    "soup cake broccoli salad fruit furniture luggage money hair fur wood metal plastic glass paper "
    "cotton leather stone concrete brick dirt mud ice fire smoke rain air light sunlight daylight "
    "tennis baseball soccer football basketball frisbee skiing surfing snowboarding skateboarding "
    "golf hockey volleyball cricket rugby polo kiting kitesurfing left right up down north south east "
    "west here there outside inside home day night morning afternoon evening noon midnight unknown "
    "lunch dinner breakfast dessert cheese chocolate pasta traffic writing graffiti music"
)
PLACES = _w(
    "kitchen bathroom bedroom living room office park street road city zoo airport field ocean "
    "sea lake river water sky air yard garden forest woods mountains snow grass desert farm "
    "station store shop restaurant market parking lot background foreground middle distance center "
    "corner front back window box bag basket sink tub oven fridge refrigerator bowl cup vase pot"
)
LOCATIVE_WORDS = _w(
    "outside inside home here there upstairs downstairs away everywhere nowhere outdoors indoors "
    "overhead nearby ahead behind above below underneath downtown"
)
NUMBER_TO_WORD = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
IRREGULAR_SINGULAR = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "teeth": "tooth",
    "feet": "foot", "mice": "mouse", "geese": "goose", "sheep": "sheep", "fish": "fish", "deer": "deer",
    "knives": "knife", "leaves": "leaf", "wolves": "wolf", "shelves": "shelf", "loaves": "loaf",
    "halves": "half", "lives": "life", "wives": "wife", "oxen": "ox", "buses": "bus", "glasses": "glass",
    "giraffes": "giraffe", "skis": "ski", "series": "series", "species": "species", "dice": "die",
}  # fmt: skip
_WORD = re.compile(r"[a-z0-9][a-z0-9'&:.$%-]*")


def words_of(question: str) -> list[str]:
    """Lower-cased words of a question, punctuation at word edges dropped."""
    return _WORD.findall(question.lower().replace("?", " ").replace(",", " "))


def is_ing(word: str) -> bool:
    return word.endswith("ing") and len(word) > 4 and word not in NOT_ING


def is_participle(word: str) -> bool:
    return word in IRREGULAR_PARTICIPLES or (word.endswith("ed") and len(word) > 4 and word not in NOT_ED)


def is_verbal(word: str) -> bool:
    return is_ing(word) or is_participle(word)


def starts_predicate(word: str, prev: str | None = None) -> bool:
    """Could `word` begin the predicate after a subject noun phrase ("the man | wearing a hat")?"""
    if word == "of" or prev == "of":
        return False
    return (
        word in PREPOSITIONS
        or word in ADJECTIVES
        or word in COMPARATIVES
        or word in DETERMINERS
        or word in ("not", "be", "been")
        or is_verbal(word)
    )


def split_subject(
    words: list[str], verb_next: bool = False, need_predicate: bool = False
) -> tuple[list[str], list[str]]:
    """Split "the man wearing a hat" into (["the", "man"], ["wearing", "a", "hat"]).

    verb_next: the predicate starts with a bare verb (after do/does/did), found by BASE_VERBS.
    need_predicate: a yes/no question always has one, so "the traffic light red" ends in it.
    """
    if not words:
        return [], []
    first = words[0]
    if first in PRONOUN_SUBJECTS:
        return words[:1], words[1:]
    if first in DEMONSTRATIVES and (
        len(words) == 1
        or (need_predicate and len(words) == 2)
        or words[1] in DETERMINERS
        or starts_predicate(words[1])
        or words[1] in BASE_VERBS
    ):
        return words[:1], words[1:]
    start = 2 if first in DETERMINERS else 1
    for k in range(start, len(words)):
        if verb_next and words[k] in BASE_VERBS and words[k - 1] not in DETERMINERS:
            return words[:k], words[k:]
        if not verb_next and starts_predicate(words[k], words[k - 1]):
            return words[:k], words[k:]
    if verb_next:
        return words[: min(start, len(words))], words[min(start, len(words)) :]
    if need_predicate and len(words) > start and words[-2] not in ("of", *DETERMINERS):
        return words[:-1], words[-1:]
    return words, []


def third_person(verb: str) -> str:
    special = {"have": "has", "do": "does", "go": "goes", "be": "is"}
    if verb in special:
        return special[verb]
    if verb.endswith(("s", "sh", "ch", "x", "z", "o")):
        return verb + "es"
    if verb.endswith("y") and len(verb) > 1 and verb[-2] not in "aeiou":
        return verb[:-1] + "ies"
    return verb + "s"


def is_plural_word(word: str) -> bool:
    if word in IRREGULAR_SINGULAR and IRREGULAR_SINGULAR[word] != word:
        return True
    return word.endswith("s") and not word.endswith(("ss", "us", "is", "'s")) and len(word) > 3


def singular(word: str) -> str:
    if word in IRREGULAR_SINGULAR:
        return IRREGULAR_SINGULAR[word]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses", "zes", "oes")):
        return word[:-2]
    if is_plural_word(word):
        return word[:-1]
    return word


def number_word(n: int) -> str:
    """Words up to ten (the VQA normalisation maps them back to digits), digits above."""
    return NUMBER_TO_WORD[n] if 0 <= n < len(NUMBER_TO_WORD) else str(n)


def as_count(answer: str) -> int | None:
    norm = normalize_answer(answer)
    return int(norm) if norm.isdigit() else None


def with_article(answer: str) -> str:
    """ "umbrella" -> "an umbrella"; leaves plurals, mass nouns, numbers, colours, phrases alone."""
    ws = answer.split()
    if not ws or len(ws) > 3 or ws[0] in DETERMINERS or ws[0] in PREPOSITIONS or ws[0][0].isdigit():
        return answer
    last = ws[-1]
    if (
        answer in NO_ARTICLE
        or last in NO_ARTICLE
        or ws[0] in NO_ARTICLE
        or is_plural_word(last)
        or is_ing(last)
        or last in ADJECTIVES
        or "'" in answer
        or ws[0] in NUMBER_TO_WORD
    ):
        return answer
    vowel = ws[0][0] in "aeiou" and not ws[0].startswith(("uni", "use", "eu", "one", "uk", "us"))
    return f"{'an' if vowel else 'a'} {answer}"


_NEGATIONS = frozenset({"not", "no", "cannot", "never", "nothing", "nobody", "none", "neither", "nor"})


def is_negated(text: str) -> bool:
    words = words_of(text)
    return any(w in _NEGATIONS or w.endswith("n't") for w in words)


def states_answer(text: str, answer: str) -> bool:
    """Does the text state the answer? yes/no: by polarity (a negation word for "no", none for "yes");
    otherwise the normalised answer occurs as whole words in the normalised text (number words such
    as "three" normalise to "3", so "there are three dogs" states "3")."""
    norm = normalize_answer(answer)
    if norm == "yes":
        return not is_negated(text) or f" {norm} " in f" {normalize_answer(text)} "
    if norm == "no":
        return is_negated(text)
    return not norm or f" {norm} " in f" {normalize_answer(text)} "
