"""Rule-based transition text: (VQA question, target answer) -> a statement of the answer.

Each of the 65 VQA question-type prefixes (mscoco_question_types.txt) maps to a rule; a question is
routed by its longest matching prefix, then by its first word (`general`), and only when both fail
to a fallback sentence that quotes the question. Every text states the answer (see states_answer).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from coir.datasets.lasco.english import (
    AUX,
    BASE_VERBS,
    BE,
    DETERMINERS,
    DO,
    LOCATIVE_WORDS,
    PLACES,
    PREPOSITIONS,
    as_count,
    is_ing,
    is_plural_word,
    is_verbal,
    number_word,
    singular,
    split_subject,
    starts_predicate,
    states_answer,
    third_person,
    with_article,
    words_of,
)

Rule = Callable[[list[str], str], "str | None"]
YES = frozenset({"yes", "yeah", "yep", "true"})
NO = frozenset({"no", "nope", "false"})
_EXPAND = {
    "what's": "what is", "where's": "where is", "who's": "who is", "how's": "how is", "that's": "that is",
    "it's": "it is", "there's": "there is", "isn't": "is not", "aren't": "are not", "doesn't": "does not",
}  # fmt: skip
_PLAIN_NOUNS = frozenset(
    ("time", "color", "colour", "sport", "brand", "number", "name", "material", "year", "day")
    + ("month", "season", "letter", "word", "language", "flavor", "pattern", "style", "time of day")
)
_MOTION = frozenset(("going", "heading", "walking", "running", "driving", "traveling", "flying", "riding"))
_BARE_OBJECT_VERBS = frozenset(("say", "read", "spell", "mean", "indicate", "cost", "weigh", "show"))
_HOW_UNITS = {
    "old": "years old",
    "tall": "tall",
    "long": "long",
    "high": "high",
    "deep": "deep",
    "wide": "wide",
}


def _join(*parts: str | Sequence[str] | None) -> str:
    out: list[str] = []
    for p in parts:
        if not p:
            continue
        out.extend(p.split() if isinstance(p, str) else p)
    return " ".join(out)


def _polarity(ans: str) -> bool | None:
    return True if ans in YES else False if ans in NO else None


def _not(aux: str) -> str:
    return "cannot" if aux == "can" else f"{aux} not"


def _do_verb(aux: str, verb: str) -> list[str]:
    if aux == "does":
        return [third_person(verb)]
    return ["did", verb] if aux == "did" else [verb]


def _choose_alternative(pred: list[str], ans: str) -> str:
    """ "a cat or a dog" + "dog" -> "a dog"; otherwise the answer, with an article where it reads right."""
    text = " ".join(pred)
    if " or " in text:
        for alt in text.split(" or "):
            core = " ".join(w for w in alt.split() if w not in ("a", "an", "the"))
            if core == ans or core.endswith(" " + ans):
                return alt
    return with_article(ans)


def _object_slot(subj: list[str], aux: str, pred: list[str], phrase: str, article: bool = True) -> str | None:
    """Fill the missing object of "<aux> <subj> <pred>": ("the man", "is", "holding") -> "… holding X"."""
    obj = with_article(phrase) if article else phrase
    if aux in DO:
        if not pred:
            return None
        tail = pred[1:]
        if pred[0] in _BARE_OBJECT_VERBS:
            obj = phrase
        if tail and all(w in PREPOSITIONS or w == "of" for w in tail):
            return _join(subj, _do_verb(aux, pred[0]), tail, obj)
        return _join(subj, _do_verb(aux, pred[0]), obj, tail)
    if not pred:
        return _join(subj, aux, obj)
    if pred == ["doing"]:
        return _join(subj, aux, phrase if is_ing(phrase.split()[0]) else ["doing", phrase])
    if pred == ["like"]:
        return _join(subj, aux, phrase)
    if pred[-1] in PREPOSITIONS or pred[-1] == "of":
        return _join(subj, aux, pred, phrase if pred[-1] in ("of", "like") else obj)
    if is_verbal(pred[0]) or pred[0] in BASE_VERBS:
        return _join(subj, aux, pred[0], obj, pred[1:])
    return _join(subj, pred, aux, phrase)


def _wh(noun: list[str], aux: str | None, clause: list[str], ans: str) -> str | None:
    """Answer a wh-question "<wh> [noun] <aux> <clause>" by putting ans where the gap is."""
    noun_text = " ".join(noun)
    article = noun_text not in _PLAIN_NOUNS and not noun_text.startswith("brand")
    phrase = f"number {ans}" if noun_text == "number" else ans
    if len(noun) > 1 and noun[0] in ("color", "colour"):  # "what color shirt …" -> "a red shirt"
        thing = " ".join(noun[1:])
        if with_article(thing) != thing:
            phrase, article = f"{'an' if ans[:1] in 'aeiou' else 'a'} {ans} {thing}", False
        else:
            phrase, article = f"{ans} {thing}", False
    if aux is None:
        return _join("the", noun, "is", ans) if noun and not clause else None
    if not clause:
        return None
    if aux in DO:
        subj, pred = split_subject(clause, verb_next=True)
        return _object_slot(subj, aux, pred, phrase, article)
    if clause[0] not in DETERMINERS and (starts_predicate(clause[0]) or is_verbal(clause[0])):
        return _join(with_article(phrase) if article else phrase, aux, clause)  # "tennis is being played"
    subj, pred = split_subject(clause)
    if not pred:
        if noun and subj in (["this"], ["that"], ["these"], ["those"]):
            if noun_text == "brand":
                return _join("the brand", aux, ans)
            if noun[0] in ("color", "colour"):
                return _join(subj, aux, phrase)
            return _join(subj, noun, aux, with_article(phrase) if article else phrase)
        if any(w in _PLAIN_NOUNS for w in subj):  # "the name of the street is main"
            article = False
        return _join(subj, aux, with_article(phrase) if article else phrase)
    return _object_slot(subj, aux, pred, phrase, article)


def _split_at_aux(rest: list[str]) -> tuple[list[str], str | None, list[str]]:
    for k, w in enumerate(rest):
        if w in AUX:
            return rest[:k], w, rest[k + 1 :]
    return rest, None, []


# ---------------------------------------------------------------------------------------- rules


def rule_yes_no(words: list[str], ans: str) -> str | None:
    """ "Is the man wearing a hat?" + no -> "the man is not wearing a hat"."""
    aux, rest = words[0], words[1:]
    if aux not in AUX or not rest:
        return None
    polarity = _polarity(ans)
    if aux in DO and rest[:2] == ["you", "think"] and len(rest) > 2:
        clause = rest[2:]
        if polarity is None:
            return _join(clause, ans) if clause else None
        if polarity:
            return _join(clause)
        first_aux = next((i for i, w in enumerate(clause) if w in AUX and w not in DO), None)
        if first_aux is not None:
            return _join(clause[:first_aux], _not(clause[first_aux]), clause[first_aux + 1 :])
    subj, pred = split_subject(rest, verb_next=aux in DO, need_predicate=True)
    if not subj or not pred:
        return None
    if polarity is None:
        if aux in DO:
            return _join(subj, _do_verb(aux, pred[0]), _choose_alternative(pred[1:], ans))
        return _join(subj, aux, _choose_alternative(pred, ans))
    if subj == ["there"]:
        if polarity:
            return _join("there", aux, pred[1:] if pred[0] == "any" else pred)
        if pred[0] in ("a", "an", "any", "some"):
            return _join("there", aux, "no", pred[1:])
        return _join("there", aux, "not" if pred[0] in PREPOSITIONS else "no", pred)
    if aux in DO:
        return _join(subj, _do_verb(aux, pred[0]), pred[1:]) if polarity else _join(subj, aux, "not", pred)
    return _join(subj, aux, pred) if polarity else _join(subj, _not(aux), pred)


def rule_count(words: list[str], ans: str) -> str | None:
    """ "How many dogs are there?" + 3 -> "there are three dogs" ("1" -> "there is one dog")."""
    if words[:2] != ["how", "many"]:
        return None
    np_, aux, clause = _split_at_aux(words[2:])
    if not np_:
        return None
    n = as_count(ans)
    single = n == 1
    if single and "of" not in np_:
        np_ = [*np_[:-1], singular(np_[-1])]
    phrase = _join(number_word(n) if n is not None else ans, np_)
    if aux in BE or aux in ("has", "have"):
        agree = {"are": "is", "were": "was", "have": "has"}.get(aux, aux) if single else aux
        if aux in BE and (not clause or clause[0] == "there"):
            return _join("there", agree, phrase, clause[1:])
        if aux in BE and (clause[0] in PREPOSITIONS or clause[0] in ("visible", "shown", "pictured")):
            return _join("there", agree, phrase, clause)
        if clause[0] not in DETERMINERS and clause[0] not in ("he", "she", "it", "they", "you", "we", "i"):
            return _join(phrase, agree, clause)
    if aux is None:
        return _join("there", "is" if single else "are", phrase)
    subj, pred = split_subject(clause, verb_next=aux in DO)
    return _object_slot(subj, aux, pred, phrase, article=False) if pred else None


def rule_what(words: list[str], ans: str) -> str | None:
    """what/which [noun] <aux> <clause>: "What is the man holding?" -> "the man is holding an umbrella"."""
    rest = words[1:]
    if rest[:2] in (["kind", "of"], ["type", "of"]):
        rest = rest[2:]
    noun, aux, clause = _split_at_aux(rest)
    return _wh(noun, aux, clause, ans)


def rule_color(words: list[str], ans: str) -> str | None:
    """ "What color is the bus?" -> "the bus is red";
    "What color shirt is he wearing?" -> "he is wearing a red shirt"."""
    i = 2 if words[:2] == ["what", "color"] or words[:2] == ["what", "colour"] else None
    if i is None:
        return None
    noun, aux, clause = _split_at_aux(words[i:])
    return _wh(["color", *noun], aux, clause, ans)


def rule_there_on_in(words: list[str], ans: str) -> str | None:
    """ "What is on the table?" -> "there is a pizza on the table"."""
    if words[:2] != ["what", "is"] or len(words) < 4 or words[2] not in ("on", "in"):
        return None
    be = "are" if is_plural_word(ans.split()[-1]) else "is"
    return _join("there", be, with_article(ans), words[2:])


def _locative(ans: str, after_verb: str | None = None) -> str:
    first, last = ans.split()[0], ans.split()[-1]
    if first in PREPOSITIONS or ans in LOCATIVE_WORDS:
        return ans
    if after_verb in _MOTION:
        return f"to the {ans}" if first not in DETERMINERS else f"to {ans}"
    if first in DETERMINERS:
        return f"at {ans}"
    if ans in ("left", "right"):
        return f"on the {ans}"
    if first in PLACES or last in PLACES:
        return f"in the {ans}"
    return f"{'at' if after_verb else 'on'} the {ans}"


def rule_where(words: list[str], ans: str) -> str | None:
    """ "Where is the cat?" + bed -> "the cat is on the bed"."""
    if len(words) < 3 or words[0] != "where" or words[1] not in AUX:
        return None
    aux, clause = words[1], words[2:]
    subj, pred = split_subject(clause, verb_next=aux in DO)
    if aux in DO:
        if not pred:
            return None
        return _join(subj, _do_verb(aux, pred[0]), pred[1:], _locative(ans, pred[0]))
    if pred and pred[-1] in PREPOSITIONS:
        return _join(subj, aux, pred, ans)
    verb = pred[0] if pred and is_verbal(pred[0]) else None
    return _join(subj, aux, pred, _locative(ans, verb))


def rule_who(words: list[str], ans: str) -> str | None:
    """ "Who is holding the umbrella?" -> "a man is holding the umbrella"; "Who is this?" -> "this is …"."""
    if len(words) < 3 or words[0] != "who" or words[1] not in AUX:
        return None
    return _wh([], words[1], words[2:], ans)


def rule_why(words: list[str], ans: str) -> str | None:
    """ "Why is the man smiling?" + happy -> "the man is smiling because of happy"-style statements."""
    if len(words) < 3 or words[0] != "why" or words[1] not in AUX:
        return None
    statement = rule_yes_no(words[1:], "yes")
    if statement is None:
        return None
    if ans.split()[0] in ("because", "to", "for", "so", "due"):
        return _join(statement, ans)
    return _join(statement, "because of", ans)


def rule_how(words: list[str], ans: str) -> str | None:
    """ "How is the weather?" -> "the weather is sunny"; "How old is the man?" + 30 -> "… 30 years old"."""
    if words[:2] == ["how", "many"]:
        return rule_count(words, ans)
    if len(words) < 3 or words[0] != "how":
        return None
    if words[1] in AUX:
        aux, clause, adj = words[1], words[2:], None
    elif len(words) > 3 and words[2] in AUX:
        adj, aux, clause = words[1], words[2], words[3:]
    else:
        return None
    subj, pred = split_subject(clause, verb_next=aux in DO)
    if not subj:
        return None
    if aux in DO:
        return _object_slot(subj, aux, pred, ans, article=False)
    amount = ans
    if adj in _HOW_UNITS and as_count(ans) is not None and not any(c.isalpha() for c in ans):
        amount = f"{ans} {_HOW_UNITS[adj]}"
    return _join(subj, aux, pred, amount)


def rule_when(words: list[str], ans: str) -> str | None:
    if len(words) < 3 or words[0] != "when" or words[1] not in AUX:
        return None
    statement = rule_yes_no(words[1:], "yes")
    if statement is None:
        return None
    first = ans.split()[0]
    if first in PREPOSITIONS or first in ("yesterday", "today", "now", "tonight"):
        return _join(statement, ans)
    return _join(
        statement, "at night" if ans == "night" else f"in the {ans}" if ans.isalpha() else f"at {ans}"
    )


def rule_whose(words: list[str], ans: str) -> str | None:
    if len(words) < 3 or words[0] != "whose":
        return None
    noun, _aux, _clause = _split_at_aux(words[1:])
    return _join("the", noun or ["thing"], "belongs to", with_article(ans)) if noun else None


def rule_general(words: list[str], ans: str) -> str | None:
    """Route by the first word: auxiliaries, what/which, who, where, why, how, when, whose."""
    if not words:
        return None
    first = words[0]
    if first in AUX:
        return rule_yes_no(words, ans)
    if first in ("what", "which"):
        return rule_color(words, ans) or rule_there_on_in(words, ans) or rule_what(words, ans)
    table: dict[str, Rule] = {
        "who": rule_who, "where": rule_where, "why": rule_why, "how": rule_how, "when": rule_when,
        "whose": rule_whose,
    }  # fmt: skip
    rule = table.get(first)
    return rule(words, ans) if rule else None


def fallback_text(question: str, ans: str) -> str:
    return f"the answer to '{question.strip().rstrip('?').lower()}' is {ans}"


def _prefixes(text: str) -> list[str]:
    return text.split("|")


PREFIX_RULES: dict[str, Rule] = {
    **dict.fromkeys(
        _prefixes(
            "is the|is this|is this a|is it|is there a|is there|are the|are these|are there|is|does the|"
            "is the man|are|does this|do|are they|is he|is the woman|is this an|do you|has|is this person|"
            "can you|is the person|could|was|is that a|are there any"
        ),
        rule_yes_no,
    ),
    **dict.fromkeys(["how many", "how many people are", "how many people are in"], rule_count),
    **dict.fromkeys(
        _prefixes(
            "what|what is the|what is|what kind of|what type of|what are the|what is this|what does the|"
            "what are|what time|what sport is|what animal is|what room is|what is the person|what is the man|"
            "what is the woman|what number is|what is the name|what brand|which|what is the color of the"
        ),
        rule_what,
    ),
    **dict.fromkeys(["what color is the", "what color are the", "what color is", "what color"], rule_color),
    **dict.fromkeys(["what is on the", "what is in the"], rule_there_on_in),
    **dict.fromkeys(["where is the", "where are the"], rule_where),
    "who is": rule_who,
    "why": rule_why,
    "why is the": rule_why,
    "how": rule_how,
    "none of the above": rule_general,
}


def prefix_of(words: list[str]) -> str | None:
    """The longest question-type prefix the question starts with (as VQA assigns question_type)."""
    for n in range(min(len(words), 6), 0, -1):
        key = " ".join(words[:n])
        if key in PREFIX_RULES:
            return key
    return None


def prepare(question: str, answer: str) -> tuple[list[str], str]:
    words: list[str] = []
    for w in words_of(question):
        words.extend(_EXPAND.get(w, w).split())
    return words, " ".join(answer.strip().lower().rstrip(".").split())


class RuleRephraser:
    """Deterministic (question, answer) -> statement; `stats` counts which rule produced each text."""

    name = "rule"

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()

    def rephrase_one(self, question: str, answer: str) -> str | None:
        words, ans = prepare(question, answer)
        if not ans:
            return None
        prefix = prefix_of(words)
        for name, rule in ((prefix, PREFIX_RULES.get(prefix or "")), ("general", rule_general)):
            if rule is None:
                continue
            try:
                text = rule(words, ans)
            except IndexError:  # a question too short for the rule's pattern
                text = None
            if text and states_answer(text, ans):
                self.stats[f"rule:{name}"] += 1
                return text
        self.stats["fallback"] += 1
        return fallback_text(question, ans)

    def rephrase(self, pairs: list[tuple[str, str]]) -> list[str | None]:
        return [self.rephrase_one(q, a) for q, a in pairs]


def rule_coverage(question_types: list[str]) -> dict:
    """Which question-type prefixes have a dedicated rule and which would only reach the fallback."""
    rules = {t: PREFIX_RULES[t].__name__ for t in question_types if t in PREFIX_RULES}
    fallback = [t for t in question_types if t not in PREFIX_RULES]
    return {
        "total": len(question_types),
        "dedicated": len(rules),
        "fallback": fallback,
        "rules": rules,
        "coverage": len(rules) / len(question_types) if question_types else 1.0,
    }


def format_coverage(report: dict) -> str:
    lines = [f"rule coverage: {report['dedicated']}/{report['total']} question types have a dedicated rule"]
    by_rule: dict[str, list[str]] = {}
    for prefix, rule in report["rules"].items():
        by_rule.setdefault(rule, []).append(prefix)
    for rule, prefixes in sorted(by_rule.items()):
        lines.append(f"  {rule:<18} {len(prefixes):>3}  {', '.join(prefixes)}")
    if report["fallback"]:
        lines.append(f"  fallback only      {len(report['fallback']):>3}  {', '.join(report['fallback'])}")
    return "\n".join(lines)


def print_coverage(report: dict) -> None:
    print(format_coverage(report))
