"""Hand-written compositional concept data: templates × slot fillers, sampled with a fixed seed.

Each concept is a list of contrastive pairs that differ only in the concept: the same template
and the same neutral slots (who, what, where, when) are filled once with a positive-side phrase
and once with the matching negative-side phrase. Phrases are varied (dozens per side, several
templates), so no single token other than the concept's own words separates the sides.

Concepts: ``sentiment`` (positive / negative), ``language`` (French / English translations),
``topic_food`` (food and cooking / other everyday activities), ``style_casual`` (casual chat /
formal register). Rebuild the shipped files with ``workbench concepts build-data``.

This module is longer than 400 lines because most of it is the word lists themselves (data kept
next to the templates that use them); the code is ``build_concept`` and ``write_all`` at the end.
"""

import random
from collections.abc import Callable
from pathlib import Path

from .data import DATA_DIR, ConceptSet, save_concept

Pair = tuple[str, str]

# ----------------------------------------------------------------------------- sentiment
_SUBJECTS = [
    "the hotel",
    "the new phone",
    "the concert",
    "the service at the bank",
    "the train ride",
    "my new job",
    "the museum",
    "the neighbourhood",
    "the software update",
    "the documentary",
    "the wedding",
    "the class",
    "the apartment",
    "the customer support",
    "the road trip",
    "the conference",
    "the restaurant down the street",
    "the new manager",
    "the city library",
    "the football match",
    "the book club",
    "the flight to Lisbon",
    "the gym",
    "the laptop",
    "the guided tour",
    "the camping weekend",
    "the repair shop",
    "the dentist",
    "the team meeting",
    "the garden centre",
    "the taxi driver",
    "the online course",
    "the play",
    "the festival",
    "the coffee machine",
    "the bike shop",
    "the new album",
    "the swimming pool",
    "the exhibition",
    "the ferry",
]
_ADJ: list[Pair] = [
    ("wonderful", "awful"),
    ("delightful", "dreadful"),
    ("excellent", "terrible"),
    ("charming", "miserable"),
    ("fantastic", "horrible"),
    ("lovely", "disappointing"),
    ("brilliant", "pathetic"),
    ("pleasant", "unpleasant"),
    ("superb", "appalling"),
    ("amazing", "atrocious"),
    ("great", "lousy"),
    ("marvellous", "dismal"),
    ("impressive", "frustrating"),
    ("enjoyable", "unbearable"),
    ("outstanding", "abysmal"),
    ("perfect", "useless"),
    ("heartwarming", "depressing"),
    ("fun", "tedious"),
    ("beautiful", "ugly"),
    ("refreshing", "exhausting"),
]
_FEEL: list[Pair] = [
    ("happy", "sad"),
    ("grateful", "annoyed"),
    ("delighted", "frustrated"),
    ("cheerful", "miserable"),
    ("relieved", "upset"),
    ("proud", "ashamed"),
    ("hopeful", "hopeless"),
    ("thrilled", "disgusted"),
    ("calm and content", "tense and angry"),
    ("inspired", "bitter"),
    ("joyful", "gloomy"),
    ("satisfied", "let down"),
]
_CLAUSE: list[Pair] = [
    ("I loved every minute", "I hated every minute"),
    ("I would gladly do it again", "I never want to repeat it"),
    ("it made my day", "it ruined my day"),
    ("I recommend it to everyone", "I warn everyone to avoid it"),
    ("it was worth every penny", "it was a waste of money"),
    ("everything went smoothly", "everything went wrong"),
    ("the staff were kind and helpful", "the staff were rude and careless"),
    ("I left with a big smile", "I left in a foul mood"),
    ("it exceeded my expectations", "it fell far short of my expectations"),
    ("I felt welcome from the start", "I felt unwelcome from the start"),
    ("it was a real pleasure", "it was a real pain"),
    ("I keep telling friends how good it was", "I keep complaining to friends about it"),
]
_SENT_TEMPLATES = [
    "{S} was {A}.",
    "Honestly, {s} was {A} and {C}.",
    "I thought {s} was {A}; {C}.",
    "After a week with {s}, I feel {F}.",
    "Everyone agreed that {s} was {A}.",
    "{S} turned out to be {A}, so {C}.",
    "My friends asked about {s}, and I told them it was {A}.",
    "We tried {s} last weekend. It was {A}.",
    "Looking back, {s} left me feeling {F}.",
    "I would describe {s} as {A}, to be honest.",
    "Thinking about {s} makes me {F}, because {C}.",
    "To sum up, {s} was {A} and {C}.",
]


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def sentiment_pair(rng: random.Random) -> Pair:
    t = rng.choice(_SENT_TEMPLATES)
    s = rng.choice(_SUBJECTS)
    a, f, c = rng.choice(_ADJ), rng.choice(_FEEL), rng.choice(_CLAUSE)
    return tuple(_cap(t.format(S=_cap(s), s=s, A=a[i], F=f[i], C=c[i])) for i in (0, 1))


# ----------------------------------------------------------------------------- language (French / English)
_PEOPLE: list[Pair] = [  # (French, English)
    ("mon frère", "my brother"),
    ("ma sœur", "my sister"),
    ("le professeur", "the teacher"),
    ("notre voisin", "our neighbour"),
    ("le vieil homme", "the old man"),
    ("la petite fille", "the little girl"),
    ("mon ami Paul", "my friend Paul"),
    ("le médecin", "the doctor"),
    ("le boulanger", "the baker"),
    ("ma grand-mère", "my grandmother"),
    ("l'étudiant", "the student"),
    ("le maire", "the mayor"),
    ("ma cousine", "my cousin"),
    ("le facteur", "the postman"),
    ("notre fils", "our son"),
    ("la directrice", "the director"),
]
_ACTIONS: list[Pair] = [
    ("lit le journal", "reads the newspaper"),
    ("boit un café", "drinks a coffee"),
    ("écrit une lettre", "writes a letter"),
    ("prépare le dîner", "prepares dinner"),
    ("attend le bus", "waits for the bus"),
    ("joue du piano", "plays the piano"),
    ("regarde la pluie", "watches the rain"),
    ("ouvre la fenêtre", "opens the window"),
    ("achète du pain", "buys some bread"),
    ("appelle un ami", "calls a friend"),
    ("nettoie la voiture", "cleans the car"),
    ("peint la porte", "paints the door"),
    ("écoute la radio", "listens to the radio"),
    ("fait une promenade", "takes a walk"),
    ("répare le vélo", "repairs the bicycle"),
    ("nourrit le chat", "feeds the cat"),
    ("arrose les fleurs", "waters the flowers"),
    ("chante une chanson", "sings a song"),
    ("apprend un nouveau mot", "learns a new word"),
    ("ferme la boutique", "closes the shop"),
]
_TIMES: list[Pair] = [
    ("Chaque matin", "Every morning"),
    ("Le dimanche", "On Sundays"),
    ("Le soir", "In the evening"),
    ("Aujourd'hui", "Today"),
    ("Parfois", "Sometimes"),
    ("Après le déjeuner", "After lunch"),
    ("En hiver", "In winter"),
    ("Avant le travail", "Before work"),
    ("Tous les jours", "Every day"),
    ("La nuit", "At night"),
    ("Lundi", "On Monday"),
    ("En été", "In summer"),
]
_PLACES: list[Pair] = [
    ("dans la cuisine", "in the kitchen"),
    ("dans le jardin", "in the garden"),
    ("à la gare", "at the station"),
    ("près de la rivière", "near the river"),
    ("au village", "in the village"),
    ("à la maison", "at home"),
    ("dans le parc", "in the park"),
    ("au bureau", "at the office"),
    ("sur le balcon", "on the balcony"),
    ("près de la fenêtre", "by the window"),
    ("en ville", "in town"),
    ("à l'école", "at school"),
]
_LANG_TEMPLATES = [
    ("{T}, {p} {a} {l}.", "{T}, {p} {a} {l}."),
    ("{P} {a} {l}.", "{P} {a} {l}."),
    ("{T}, {p} {a}, puis {q} {b}.", "{T}, {p} {a}, then {q} {b}."),
    ("Je crois que {p} {a} {l}.", "I think that {p} {a} {l}."),
    ("{P} {a} pendant que {q} {b}.", "{P} {a} while {q} {b}."),
    ("On dit que {p} {a} {l}.", "People say that {p} {a} {l}."),
]


def language_pair(rng: random.Random) -> Pair:
    tf, te = rng.choice(_LANG_TEMPLATES)
    (pf, pe), (qf, qe) = rng.sample(_PEOPLE, 2)
    (af, ae), (bf, be) = rng.sample(_ACTIONS, 2)
    tm, pl = rng.choice(_TIMES), rng.choice(_PLACES)
    fr = tf.format(T=tm[0], p=pf, P=_cap(pf), a=af, l=pl[0], q=qf, b=bf)
    en = te.format(T=tm[1], p=pe, P=_cap(pe), a=ae, l=pl[1], q=qe, b=be)
    return fr, en


# ----------------------------------------------------------------------------- topic: food and cooking
_WHO = [
    "My aunt",
    "Our neighbour",
    "The new intern",
    "My roommate",
    "Grandpa",
    "A colleague of mine",
    "My sister",
    "The couple next door",
    "My best friend",
    "Our teacher",
    "The landlord",
    "My cousin",
    "An old classmate",
    "My father",
]
_WHEN = [
    "On Saturday",
    "Last night",
    "Yesterday",
    "This morning",
    "During the holidays",
    "On Sunday evening",
    "Every Friday",
    "Last week",
    "After work",
    "Over the long weekend",
    "Before the guests arrived",
    "Early today",
]
_ACT: list[Pair] = [  # (food, other)
    ("baking sourdough bread", "repairing an old bicycle"),
    ("making a big pot of tomato soup", "painting the garden fence"),
    ("roasting a chicken with garlic and lemon", "reorganising the bookshelves"),
    ("kneading dough for fresh pasta", "assembling a new wardrobe"),
    ("tasting different cheeses", "comparing different laptops"),
    ("frying onions for a curry", "washing the car"),
    ("slicing vegetables for a salad", "sorting old photographs"),
    ("grilling sausages on the barbecue", "mowing the lawn"),
    ("whisking eggs for an omelette", "filling in tax forms"),
    ("simmering a beef stew", "fixing a leaking tap"),
    ("decorating a chocolate cake", "decorating the living room"),
    ("peeling potatoes for dinner", "cleaning the windows"),
    ("shopping for spices at the market", "shopping for screws at the hardware store"),
    ("cooking rice and beans", "ironing shirts"),
    ("preparing sushi rolls", "planting tulip bulbs"),
    ("brewing coffee and baking croissants", "tuning the old piano"),
    ("stirring a risotto", "vacuuming the stairs"),
    ("making strawberry jam", "writing a cover letter"),
]
_TALK: list[Pair] = [
    ("the best recipe for pancakes", "the best route for cycling to work"),
    ("how to season a cast-iron pan", "how to wax a snowboard"),
    ("which restaurant serves the tastiest noodles", "which airline has the most legroom"),
    ("why homemade bread tastes better", "why paper maps are still useful"),
    ("the perfect way to cook steak", "the perfect way to pack a suitcase"),
    ("spicy food from Thailand", "train travel in Switzerland"),
    ("a delicious apple pie", "a difficult crossword puzzle"),
    ("ripe mangoes and fresh figs", "old cameras and film rolls"),
    ("the lunch menu at the café", "the timetable at the station"),
    ("a vegetarian lasagne", "a second-hand sofa"),
    ("the flavour of smoked paprika", "the sound of a vintage guitar"),
]
_FOOD_TEMPLATES = [
    ("{W}, {w} spent the afternoon {A}.", "act"),
    ("{W}, {w} was busy {A}.", "act"),
    ("{w_} talked for hours about {T}.", "talk"),
    ("{W}, I asked {w} about {T}.", "talk"),
    ("{w_} loves {A} more than anything.", "act"),
    ("We laughed a lot while {A} together.", "act"),
    ("{w_} sent me a long message about {T}.", "talk"),
    ("{W}, the whole family ended up {A}.", "act"),
]


def food_pair(rng: random.Random) -> Pair:
    t, kind = rng.choice(_FOOD_TEMPLATES)
    who, when = rng.choice(_WHO), rng.choice(_WHEN)
    slot = rng.choice(_ACT if kind == "act" else _TALK)
    w = who if who[0].isupper() and who.split()[0] in ("Grandpa",) else who[0].lower() + who[1:]
    out = []
    for i in (0, 1):
        out.append(t.format(W=when, w=w, w_=who, A=slot[i], T=slot[i]))
    return out[0], out[1]


# ----------------------------------------------------------------------------- style: casual / formal
_CONTENT: list[Pair] = [  # (casual, formal)
    ("the meeting got pushed to thursday", "the meeting has been postponed until Thursday"),
    ("i can't make it to the party tonight", "I am unable to attend this evening's reception"),
    ("the printer's broken again", "the printer is once again out of order"),
    ("we're outta coffee in the kitchen", "the kitchen has run out of coffee"),
    ("the report's gonna be a bit late", "the report will be slightly delayed"),
    ("thanks a ton for the help yesterday", "thank you very much for your assistance yesterday"),
    ("the wifi's super slow today", "the wireless network is considerably slower than usual today"),
    ("i still need the slides from u", "I still require the presentation slides from you"),
    ("i totally forgot about the deadline", "I regret that I overlooked the deadline"),
    ("the new guy seems pretty cool", "our new colleague appears to be very pleasant"),
    ("we should grab lunch sometime", "perhaps we could arrange to have lunch together"),
    ("the train was late, as usual", "the train was delayed, as is frequently the case"),
    ("i'm kinda swamped this week", "I am rather occupied this week"),
    ("the budget thing got approved", "the budget proposal has been approved"),
    ("my laptop just died on me", "my computer has unexpectedly stopped working"),
    ("the client loved the demo", "the client was very satisfied with the demonstration"),
    ("i'll be working from home tomorrow", "I shall be working remotely tomorrow"),
    ("the parking lot is packed again", "the car park is once again at full capacity"),
    ("we need more chairs for the event", "additional seating will be required for the event"),
    ("the heating's not working upstairs", "the heating on the upper floor is not functioning"),
]
_CAS_OPEN = [
    "hey",
    "hey guys",
    "yo",
    "ok so",
    "omg",
    "soooo",
    "hiya",
    "btw",
    "quick thing",
    "ugh",
    "lol ok",
    "heads up",
]
_FOR_OPEN = [
    "Dear colleagues,",
    "Good afternoon,",
    "Dear Sir or Madam,",
    "To whom it may concern,",
    "Dear team,",
    "Please note that",
    "I would like to inform you that",
    "Kindly be advised that",
    "Allow me to mention that",
    "It is my duty to report that",
    "For your information,",
    "I wish to let you know that",
]
_CAS_CLOSE = ["lol", "haha", "!!", "just fyi", "no biggie", "ugh", "whatever", ":)", "cya", "tbh", "lmk", "cheers!"]
_FOR_CLOSE = [
    "Kind regards.",
    "Thank you for your understanding.",
    "With best regards.",
    "Yours sincerely.",
    "I remain at your disposal.",
    "Please accept my apologies for any inconvenience.",
    "Respectfully.",
    "Thank you for your attention.",
    "Best regards.",
    "Sincerely.",
    "With thanks.",
    "Yours faithfully.",
]


def style_pair(rng: random.Random) -> Pair:
    cas, frm = rng.choice(_CONTENT)
    lead = rng.choice(_FOR_OPEN)
    body = frm if lead.endswith(("that", ",")) and not frm.startswith("I ") else frm[0].upper() + frm[1:]
    text_f = f"{lead} {body}. {rng.choice(_FOR_CLOSE)}"
    opener, closer = rng.choice(_CAS_OPEN), rng.choice(_CAS_CLOSE)
    shape = rng.random()  # casual messages drop the greeting or the sign-off some of the time
    parts = [cas, closer] if shape < 0.25 else [opener, cas] if shape < 0.5 else [opener, cas, closer]
    text_c = " ".join(parts).replace(" !!", "!!")
    return text_c, text_f


# ----------------------------------------------------------------------------- building the files
BUILDERS: dict[str, tuple[Callable[[random.Random], Pair], str, str, str]] = {
    "sentiment": (
        sentiment_pair,
        "positive",
        "negative",
        "Short reviews and remarks about everyday things; the pair differs only in positive vs negative evaluation.",
    ),
    "language": (
        language_pair,
        "French",
        "English",
        "Everyday sentences in French and their English translation (same content).",
    ),
    "topic_food": (
        food_pair,
        "food and cooking",
        "other activities",
        "Sentences about what people do or talk about; food/cooking activity vs a non-food activity in the same frame.",
    ),
    "style_casual": (
        style_pair,
        "casual",
        "formal",
        "The same workplace message in a casual chat register vs a formal written register.",
    ),
}


def build_concept(name: str, n_train: int = 200, n_test: int = 60, seed: int = 0) -> tuple[ConceptSet, ConceptSet]:
    """Sample ``n_train + n_test`` distinct contrastive pairs for concept ``name`` with seed ``seed``."""
    if name not in BUILDERS:
        raise ValueError(f"unknown template concept {name!r}; choose one of {sorted(BUILDERS)}")
    fn, pos_label, neg_label, desc = BUILDERS[name]
    rng = random.Random(f"{name}:{seed}")
    seen, pairs = set(), []
    tries = 0
    while len(pairs) < n_train + n_test:
        tries += 1
        if tries > 200 * (n_train + n_test):
            raise RuntimeError(
                f"concept {name!r}: only {len(pairs)} distinct pairs after {tries} draws; the templates are too small"
            )
        p, q = fn(rng)
        if p in seen or q in seen or p == q:
            continue
        seen.update((p, q))
        pairs.append((p, q))
    prov = {
        "source": "hand-written templates x slots (workbench.concepts.templates)",
        "seed": seed,
        "builder": f"workbench.concepts.templates.{fn.__name__}",
        "n_train": n_train,
        "n_test": n_test,
    }
    mk = lambda ps: ConceptSet(
        name, [p for p, _ in ps], [q for _, q in ps], True, pos_label, neg_label, desc, provenance=prov
    )
    return mk(pairs[:n_train]), mk(pairs[n_train:])


def write_all(directory=None, n_train: int = 200, n_test: int = 60, seed: int = 0) -> list[Path]:
    """Write every template concept as ``<directory>/<name>.jsonl`` (default: the shipped data folder)."""
    d = Path(directory) if directory is not None else DATA_DIR
    return [save_concept(d / f"{name}.jsonl", *build_concept(name, n_train, n_test, seed)) for name in BUILDERS]
