"""FashionIQ-style benchmark: garments of three categories, two relative captions per query.

A product has an identity (body width, neckline, belt; unique per family within a category and
split) and attributes (colour, pattern, cut). Families are near-duplicate products that differ in
their attributes; roles as in vqa_world ("both", "image": two members only, "text": targets whose
stated attributes are unique among the category's split images).
"""

from __future__ import annotations

import random
import string
from pathlib import Path

from coir.common.json_io import write_json_atomic
from coir.datasets.fashioniq import (
    fashioniq_image_path,
    write_fashioniq_image_split,
    write_fashioniq_triplets,
)
from coir.datasets.records import FASHIONIQ_CATEGORIES, FashionIQTriplet
from coir.datasets.synth import labels as lab
from coir.datasets.synth.render import (
    BACKDROPS,
    CUTS,
    PATTERNS,
    RARE_COLOURS,
    Garment,
    encode,
    render_garment,
    write_file,
)
from coir.datasets.synth.scenes import rng_for

SPLITS = ("train", "val", "test")
COMMON = ("red", "green", "blue", "yellow", "purple", "orange")
IDENTITIES = [(w, n, b) for w in range(4) for n in range(3) for b in range(2)]
ATTRS = ("colour", "pattern", "cut")
NOUN = {"dress": "dress", "shirt": "shirt", "toptee": "top"}


def phrases(category: str, attr: str, value: str) -> list[str]:
    if attr == "colour":
        return [f"is {value}", f"{value} colored", f"is in {value}", f"has {_article(value)} color"]
    if attr == "pattern":
        return {
            "plain": ["is plain", "solid color", "has no pattern"],
            "stripes": ["has stripes", "is striped"],
            "dots": ["has polka dots", "is dotted"],
        }[value]
    return {
        "short": ["is short", "is a mini dress"],
        "long": ["is long", "is floor length"],
        "short-sleeved": ["has short sleeves", "is short sleeved"],
        "long-sleeved": ["has long sleeves", "is long sleeved"],
        "sleeveless": ["is sleeveless", "has no sleeves"],
    }[value]


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def captions(rng: random.Random, category: str, target: Garment, described: list[str]) -> tuple[str, str]:
    said = [rng.sample(phrases(category, a, getattr(target, a)), 2) for a in described]
    if len(said) == 1:
        first, second = said[0]
        return first, rng.choice(
            [
                second,
                f"{_article(getattr(target, described[0]))} {NOUN[category]}"
                if described[0] == "colour"
                else second,
            ]
        )
    c1 = said[0][0]
    c2 = " and ".join(p[0] for p in said[1:])
    return c1, c2


def distance(a: Garment, b: Garment) -> int:
    return sum(getattr(a, x) != getattr(b, x) for x in ATTRS)


def _family(
    rng: random.Random,
    category: str,
    role: str,
    identity: tuple[int, int, int, int],
    rare_free: list[tuple[str, str, str]],
    colours: tuple[str, ...] = COMMON,
) -> tuple[list[Garment], list[tuple[int, int, list[str]]]]:
    """Members and queries (reference, target, attributes the captions state)."""
    cuts = CUTS[category]
    base = dict(
        category=category,
        colour=rng.choice(COMMON),
        pattern=rng.choice(PATTERNS),
        cut=rng.choice(cuts),
        width=identity[0],
        neckline=identity[1],
        belt=identity[2],
        backdrop=identity[3],
    )

    def g(**kw: str) -> Garment:
        return Garment(**{**base, **kw})

    if role == "image":  # the cut (length, sleeves) is the smallest visual change: nearest image
        other = rng.choice([v for v in cuts if v != base["cut"]])
        return [g(), g(cut=other)], [(0, 1, ["cut"]), (1, 0, ["cut"])]
    if role == "text":
        # two targets whose (colour, pattern, cut) is unique in the split; captions state all three
        picks = []
        for _ in range(2):
            free = [t for t in rare_free if t[1:] == (base["pattern"], base["cut"])] or rare_free
            choice = free[0] if free else (rng.choice(list(RARE_COLOURS)), base["pattern"], base["cut"])
            if choice in rare_free:
                rare_free.remove(choice)
            picks.append(choice)
        commons = rng.sample([c for c in COMMON if c != base["colour"]], 2)
        members = [g(), g(colour=commons[0]), g(colour=commons[1])]
        members += [g(colour=c, pattern=p, cut=k) for c, p, k in picks]
        return members, [
            (0, 3, list(ATTRS)),
            (1, 4, list(ATTRS)),
            (2, 0, ["colour"]),
            (3, 1, ["colour"]),
            (4, 2, ["colour"]),
        ]
    if role == "colour":
        members = [g(colour=c) for c in rng.sample(colours, 5)]
        return members, [(i, (i + 1) % 5, ["colour"]) for i in range(5)]
    a, b = rng.choice([("colour", "pattern"), ("colour", "cut"), ("pattern", "colour"), ("pattern", "cut")])
    pool = {"colour": colours, "pattern": PATTERNS, "cut": cuts}
    av = rng.sample(pool[a], 3)
    bv = rng.sample(pool[b], 2)
    members = [
        g(**{a: x, b: y})
        for x, y in ((av[0], bv[0]), (av[0], bv[1]), (av[1], bv[0]), (av[1], bv[1]), (av[2], bv[0]))
    ]
    order = rng.sample(range(5), 5)
    queries = []
    for i in range(5):
        r, t = order[i], order[(i + 1) % 5]
        described = [x for x in (a, b) if getattr(members[r], x) != getattr(members[t], x)]
        queries.append((r, t, described))
    return members, queries


def _role_counts(n_families: int, image_share: float, text_share: float) -> tuple[int, int]:
    """Image families have 2 queries, the others 5; text families 2 unique-target queries each."""
    n_image = round(image_share * 5 * n_families / (2 + 3 * image_share))
    return n_image, round(text_share * (5 * n_families - 3 * n_image) / 2)


def _roles(rng: random.Random, n_families: int, image_share: float, text_share: float) -> list[str]:
    n_image, n_text = _role_counts(n_families, image_share, text_share)
    roles = ["image"] * n_image + ["text"] * n_text
    roles += rng.choices(["colour", "grid"], k=max(0, n_families - len(roles)))
    rng.shuffle(roles)
    return roles


def _asin(rng: random.Random, used: set[str]) -> str:
    while True:
        asin = "B00" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=7))
        if asin not in used:
            used.add(asin)
            return asin


def build_split(
    out: Path,
    split: str,
    n_families: int,
    seed: int,
    image_size: int,
    image_share: float,
    text_share: float,
    used_asins: set[str],
    pbar=None,
) -> dict:
    root = out / "fashioniq"
    garments_truth: dict[str, dict] = {}
    labels_by_cat: dict[str, list[str]] = {}
    summary: dict = {}
    all_labels: list[str] = []
    conflicts = 0
    for category in FASHIONIQ_CATEGORIES:
        rng = rng_for(seed, "fiq-plan", split, category)
        roles = _roles(rng, n_families, image_share, text_share)
        identities = [(*x, f % len(BACKDROPS)) for f, x in enumerate(rng.sample(IDENTITIES, len(roles)))]
        rare_free = [(c, p, k) for c in RARE_COLOURS for p in PATTERNS for k in CUTS[category]]
        rng.shuffle(rare_free)
        garments: list[Garment] = []
        asins: list[str] = []
        members: list[list[int]] = []
        query_idx: list[tuple[int, int, int, list[str]]] = []
        for f, role in enumerate(roles):
            frng = rng_for(seed, "fiq", split, category, f)
            # training splits use rare colours as ordinary ones (learnable); held-out splits keep them unique
            pool = COMMON + tuple(RARE_COLOURS) if split == "train" else COMMON
            fam, queries = _family(frng, category, role, identities[f], rare_free, pool)
            members.append(list(range(len(garments), len(garments) + len(fam))))
            for m, garment in enumerate(fam):
                garments.append(garment)
                asins.append(_asin(rng_for(seed, "asin", split, category, f, m), used_asins))
                garments_truth[asins[-1]] = {
                    "category": category,
                    "family": f,
                    "member": m,
                    "role": role,
                    **{
                        k: getattr(garment, k)
                        for k in ("colour", "pattern", "cut", "width", "neckline", "belt", "backdrop")
                    },
                }
            query_idx += [(f, members[f][r], members[f][t], d) for r, t, d in queries]
        triplets, cat_labels = [], []
        for f, ref, tgt, described in query_idx:
            crng = rng_for(seed, "fiq-cap", split, category, ref, tgt)
            want = {a: getattr(garments[tgt], a) for a in described}
            hits = [
                i
                for i, x in enumerate(garments)
                if i != ref and all(getattr(x, a) == v for a, v in want.items())
            ]
            near = lab.image_redundant(ref, tgt, members[f], lambda x, y, g=garments: distance(g[x], g[y]))
            label, conflict = lab.label(hits == [tgt], near)
            conflicts += conflict
            cat_labels.append(label)
            triplets.append(
                FashionIQTriplet(
                    category,
                    asins[ref],
                    captions(crng, category, garments[tgt], described),
                    None if split == "test" else asins[tgt],
                )
            )
        for asin, garment in zip(asins, garments, strict=True):
            write_file(fashioniq_image_path(root, asin), encode(render_garment(garment, image_size), "jpg"))
            if pbar is not None:
                pbar.update(1)
        write_fashioniq_triplets(root, category, split, triplets)
        write_fashioniq_image_split(root, category, split, asins)
        labels_by_cat[category] = cat_labels
        all_labels += cat_labels
        summary[category] = {
            "images": len(asins),
            "queries": len(triplets),
            "redundancy": lab.summarize(cat_labels, {"image": image_share, "text": text_share}, 0),
        }
    write_json_atomic(out / "truth" / f"fashioniq_garments_{split}.json", garments_truth, indent=1)
    for category, cat_labels in labels_by_cat.items():  # keyed by the query's index in the captions file
        write_json_atomic(
            out / "truth" / f"fashioniq_redundancy_{category}_{split}.json",
            {str(i): x for i, x in enumerate(cat_labels)},
            indent=1,
        )
    summary["redundancy"] = lab.summarize(all_labels, {"image": image_share, "text": text_share}, conflicts)
    return summary


def count_images(n_families: int, image_share: float, text_share: float) -> int:
    n_image, n_text = _role_counts(n_families, image_share, text_share)
    return len(FASHIONIQ_CATEGORIES) * (5 * max(n_families, n_image + n_text) - 3 * n_image)
