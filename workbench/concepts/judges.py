"""Judges of steering success that are independent of the model being steered.

- sentiment: VADER (Hutto & Gilbert 2014, package ``vaderSentiment``, rule-based, offline);
  a text is positive when its compound score is ≥ 0.05 and negative when ≤ −0.05 (VADER's own cut-offs).
- language: ``py3langid`` (a port of langid.py, Lui & Baldwin 2012), restricted to the languages given.
- topic_food: a hand-written regular-expression lexicon of food and cooking words.
- style_casual: hand-written rules counting casual markers (slang, contractions, chat abbreviations,
  emoticons, lower-case sentence starts) minus formal markers (formal connectives and formulas).

A ``Judge`` maps a text to a score and to a hit (the concept's positive side is present).
"""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Judge:
    """``score(text) -> float`` (higher = more of the concept's positive side) and ``threshold``:
    a text is a hit when ``score > threshold`` (or ``>=`` when ``inclusive``)."""

    name: str
    concept: str
    score: Callable[[str], float]
    threshold: float
    inclusive: bool = True
    description: str = ""

    def hit(self, text: str) -> bool:
        s = self.score(text)
        return s >= self.threshold if self.inclusive else s > self.threshold

    def share(self, texts: Sequence[str]) -> float:
        texts = list(texts)
        if not texts:
            raise ValueError("cannot judge an empty list of texts")
        return sum(self.hit(t) for t in texts) / len(texts)


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def vader_compound(text: str) -> float:
    """VADER's compound score in [−1, 1]."""
    return float(_vader().polarity_scores(text)["compound"])


@lru_cache(maxsize=4)
def _langid(langs: tuple):
    from pathlib import Path

    import py3langid.langid as langid

    ident = langid.LanguageIdentifier.from_modelpath(Path(langid.__file__).parent / langid.MODEL_FILE, norm_probs=True)
    ident.set_languages(list(langs))
    return ident


def language_probability(text: str, lang: str = "fr", among: tuple = ("en", "fr")) -> float:
    """py3langid's normalised probability that ``text`` is in ``lang`` (restricted to ``among``)."""
    if not text.strip():
        return 0.0
    code, p = _langid(tuple(among)).classify(text)
    return float(p if code == lang else 1.0 - p)


_FOOD = re.compile(
    r"\b(food|foods|cook\w*|bak(e|ed|es|ing|er|ery)|recipe\w*|kitchen|chef|meal\w*|dinner|lunch|breakfast|brunch|supper|"
    r"snack\w*|eat|eats|eating|ate|eaten|tast(e|es|ed|y|ing)|delicious|flavou?r\w*|spic(e|es|y)|sauce\w*|soup\w*|stew|"
    r"bread|dough|pasta|noodle\w*|rice|pizza|salad\w*|cheese\w*|butter|sugar|salt|pepper|garlic|onion\w*|tomato\w*|potato\w*|"
    r"vegetable\w*|fruit\w*|apple\w*|banana\w*|lemon\w*|berr(y|ies)|strawberr\w*|chocolate|cake\w*|cookie\w*|pie|pies|dessert\w*|"
    r"cream|milk|egg|eggs|chicken|beef|pork|fish|meat\w*|steak\w*|sausage\w*|burger\w*|sandwich\w*|coffee|tea|wine|beer|"
    r"restaurant\w*|caf[eé]|menu|dish|dishes|roast\w*|fr(y|ied|ies)|grill\w*|boil\w*|simmer\w*|oven|stove|pan|pot|"
    r"mango\w*|figs?|omelett?e\w*|lasagne|lasagna|pancake\w*|croissant\w*|vegetarian|vegan|hungry|appetite|ingredient\w*|curry|sushi|jam|honey|herb\w*|vanilla|cinnamon|feast|picnic|grocer\w*|bakery|juice)\b",
    re.IGNORECASE,
)


def food_hits(text: str) -> int:
    """Number of food/cooking lexicon matches in ``text``."""
    return len(_FOOD.findall(text))


_CASUAL_WORDS = re.compile(
    r"\b(hey|yo|hiya|lol|lmao|omg|btw|tbh|fyi|lmk|idk|imo|gonna|wanna|gotta|kinda|sorta|outta|dunno|yeah|yep|nope|"
    r"ok|okay|guys|dude|cool|awesome|super|stuff|totally|cya|haha\w*|ugh|meh|nah|wow|u|ur|pls|thx|"
    r"thanks a ton|no biggie)\b",
    re.IGNORECASE,
)
_CONTRACTION = re.compile(r"\b\w+'(s|re|m|ll|d|ve|t)\b|\b\w+n't\b", re.IGNORECASE)
_EMOTICON = re.compile(r"(:\)|:\(|:D|;\)|!!+|\?\?+|\.\.\.)")
_FORMAL = re.compile(
    r"\b(dear|sincerely|regards|kindly|furthermore|moreover|therefore|however|hereby|accordingly|nevertheless|"
    r"respectfully|shall|would like to|please note|be advised|inform you|for your information|at your disposal|"
    r"consequently|regarding|additionally|require[sd]?|assistance|inconvenience|apologies|approximately)\b",
    re.IGNORECASE,
)


def casual_score(text: str) -> float:
    """Casual markers minus formal markers, per 10 words: slang/chat words, contractions, emoticons
    and repeated punctuation, sentences starting in lower case; minus formal words and formulas."""
    words = max(1, len(text.split()))
    lower_starts = len(re.findall(r"(?:^|[.!?]\s+)[a-z]", text.strip()))
    casual = (
        len(_CASUAL_WORDS.findall(text)) + len(_CONTRACTION.findall(text)) + len(_EMOTICON.findall(text)) + lower_starts
    )
    formal = len(_FORMAL.findall(text))
    return 10.0 * (casual - formal) / words


JUDGES: dict[str, Judge] = {
    "sentiment": Judge("vader", "sentiment", vader_compound, 0.05, True, "VADER compound >= 0.05 (positive)"),
    # the human-rated real-text set (realtext.py) is the same concept, judged the same way
    "sentiment_real": Judge("vader", "sentiment", vader_compound, 0.05, True, "VADER compound >= 0.05 (positive)"),
    "language": Judge(
        "py3langid", "language", language_probability, 0.5, False, "py3langid (en vs fr) says French with p > 0.5"
    ),
    "topic_food": Judge(
        "food-lexicon",
        "topic_food",
        lambda t: float(food_hits(t)),
        1.0,
        True,
        "at least one food/cooking word from a hand-written lexicon",
    ),
    "style_casual": Judge(
        "casual-rules", "style_casual", casual_score, 0.0, False, "more casual markers than formal markers"
    ),
}


def judge_for(concept: str) -> Judge:
    if concept not in JUDGES:
        raise ValueError(f"no independent judge for concept {concept!r}; known: {sorted(JUDGES)}")
    return JUDGES[concept]


def judge_texts(judge: Judge, texts: Sequence[str]) -> list[float]:
    return [judge.score(t) for t in texts]
