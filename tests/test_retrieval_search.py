"""Bring your own triplets, then query the trained model: `coir data shards custom` → `coir train` →
`coir index` → `coir search` / coir.eval.Retriever on the tiny synthetic world, for a dot-product
family (CLIP4Cir, trained a few steps) and a late-fusion one (ARTEMIS, scored jointly by its `score`).
Every search is checked against a brute-force scoring of the whole gallery computed here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from lasco_fixture import run_command
from learning_support import train_tiny, untrained_export
from PIL import Image
from synth_fixture import built_world

from coir.common.errors import CoirError
from coir.eval.ranking import chunk_sizes
from coir.pipeline.cli import main as coir
from coir.pipeline.models.export import load_export

REPO = Path(__file__).resolve().parents[1]


@torch.no_grad()
def brute_force(export: Path, files: list[Path], reference: Path, text: str) -> list[tuple[float, Path]]:
    """Every gallery image scored against the query in one block, best first (ties: lower index)."""
    model = load_export(export).eval()
    processor = model.processor()
    pixels = torch.stack([processor.image(Image.open(f).convert("RGB")) for f in files])
    gallery = model.encode_target(processor.normalize(pixels))
    image = processor.normalize(processor.image(Image.open(reference).convert("RGB"))[None])
    query = model.encode_query({"query_image": image, **processor.text([text])})
    scores = model.score(query, gallery)[0].tolist()
    order = sorted(range(len(files)), key=lambda i: (-scores[i], i))
    return [(scores[i], files[i]) for i in order]


@pytest.fixture(scope="module")
def mine(tmp_path_factory) -> dict[str, Path]:
    """A user's JSONL (FashionIQ dress triplets of the world, paths relative to its image folder) sharded."""
    world = built_world(tmp_path_factory)
    work = tmp_path_factory.mktemp("byo")
    fashioniq = world / "fashioniq"
    captions = json.loads((fashioniq / "captions" / "cap.dress.train.json").read_text())
    lines = [
        {
            "reference": f"{c['candidate']}.jpg",
            "text": " and ".join(c["captions"]),
            "target": f"{c['target']}.jpg",
        }
        for c in captions
    ]
    triplets = work / "mine.jsonl"
    triplets.write_text("".join(json.dumps(line) + "\n" for line in lines))
    shards = work / "shards"
    argv = [
        "custom",
        "--triplets",
        str(triplets),
        "--images",
        str(fashioniq / "images"),
        "--out",
        str(shards),
    ]
    assert run_command("coir.datasets.shards.cli", [*argv, "--size", "32", "--no-progress"]) == 0
    return {
        "work": work,
        "fashioniq": fashioniq,
        "shards": shards,
        "images": fashioniq / "images",
        "triplets": triplets,
    }


def _first_line(triplets: Path) -> dict:
    return json.loads(triplets.read_text().splitlines()[0])


def test_user_triplets_train_index_search_clip4cir(mine, capsys):
    work, shards = mine["work"], mine["shards"]
    export = train_tiny(
        REPO / "configs" / "methods" / "clip4cir_tiny.yaml", [shards / "triplets"], work / "run", 5
    )
    index = work / "c4c_index"
    gallery = str(shards / "gallery")
    assert coir(["index", "--checkpoint", str(export), "--images", gallery, "--out", str(index),
                 "--chunk", "16", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    info = json.loads((index / "index.json").read_text())
    gallery_manifest = json.loads((shards / "gallery" / "manifest.json").read_text())
    assert (info["search"], info["num_images"]) == ("dot_product", gallery_manifest["num_samples"])
    line = _first_line(mine["triplets"])
    reference = mine["images"] / line["reference"]
    capsys.readouterr()
    picture = work / "top.png"
    assert coir(["search", "--index", str(index), "--image", str(reference), "--text", line["text"],
                 "--k", "5", "--exact", "--device", "cpu", "--picture", str(picture)]) == 0  # fmt: skip
    rows = [row.split("\t") for row in capsys.readouterr().out.splitlines() if row[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3, 4, 5]

    entries = json.loads((index / "images.json").read_text())
    files = [index / e["file"] for e in entries]  # extracted from the shards into the index folder
    assert all(f.parent == index / "images" for f in files)
    expected = brute_force(export, files, reference, line["text"])[:5]
    assert [Path(r[2]) for r in rows] == [f for _, f in expected]
    assert [float(r[1]) for r in rows] == pytest.approx([s for s, _ in expected], abs=1e-4)
    # the gallery holds every distinct image of the file, named by its path under --images
    named = {v for line in map(json.loads, mine["triplets"].read_text().splitlines()) for v in
             (line["reference"], line["target"])}  # fmt: skip
    assert sorted(e["name"] for e in entries) == sorted(named)
    with Image.open(picture) as drawn:
        assert drawn.size[0] > drawn.size[1] > 0


def test_faiss_gives_the_exact_ranking(mine):
    pytest.importorskip("faiss")
    from coir.eval import Retriever

    work = mine["work"]
    export = untrained_export(REPO / "configs" / "methods" / "clip4cir_tiny.yaml", [], work / "c4c_untrained")
    index = work / "faiss_index"
    assert coir(["index", "--checkpoint", str(export), "--images", str(mine["images"]), "--out", str(index),
                 "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    line = _first_line(mine["triplets"])
    fast, exact = (Retriever.load(export, index, "cpu", exact=e) for e in (False, True))
    assert (fast.backend, exact.backend) == ("faiss", "exact")
    a, b = (r.search(mine["images"] / line["reference"], line["text"], 10) for r in (fast, exact))
    assert [h.name for h in a] == [h.name for h in b]
    assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


@pytest.fixture(scope="module")
def artemis(mine) -> Path:
    work = mine["work"]
    vocab = work / "vocab.json"
    argv = ["--dataset", "custom", "--root", str(mine["triplets"]), "--out", str(vocab)]
    assert run_command("coir.datasets.vocab_cli", argv) == 0
    words = set(json.loads(vocab.read_text())["words"])  # the file's texts, every word of them
    texts = [json.loads(line)["text"] for line in mine["triplets"].read_text().splitlines()]
    assert {w for t in texts for w in t.lower().split()} <= words
    overrides = [f"model.vocabulary={vocab}", "model.image_size=32", "model.resize=32"]
    return untrained_export(REPO / "configs" / "methods" / "artemis_tiny.yaml", overrides, work / "artemis")


def test_late_fusion_search_uses_the_model_score_and_resumes(mine, artemis, monkeypatch):
    from coir.eval import Retriever, gallery_index

    work, images = mine["work"], mine["images"]
    index = work / "artemis_index"
    real_encode, calls, stop_after = gallery_index.encode_images, [], [2]

    def interrupted(model, files, *args, **kwargs):
        if len(calls) == stop_after[0]:
            raise KeyboardInterrupt  # the first run stops after two chunks
        calls.append(len(files))
        return real_encode(model, files, *args, **kwargs)

    monkeypatch.setattr(gallery_index, "encode_images", interrupted)
    build = ["index", "--checkpoint", str(artemis), "--images", str(images), "--out", str(index),
             "--chunk", "64", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert coir(build) == 130
    assert not (index / "index.json").exists() and len(list((index / "_parts").glob("part-*.pt"))) == 2
    calls.clear()
    stop_after[0] = -1
    assert coir(build) == 0
    n_images = len(list(images.glob("*.jpg")))
    assert calls == [min(64, n_images - s) for s in range(128, n_images, 64)]  # only what was left
    info = json.loads((index / "index.json").read_text())
    assert (info["search"], info["faiss"], info["num_images"]) == ("model_score", False, n_images)
    calls.clear()
    assert coir(build) == 0 and calls == []  # finished: nothing embedded again
    other = [*build[:4], str(mine["shards"] / "gallery"), *build[5:]]
    assert coir(other) == 2  # another gallery into a finished index: refused, nothing written
    assert not (index / "images").exists()

    line = json.loads(mine["triplets"].read_text().splitlines()[3])
    reference = images / line["reference"]
    retriever = Retriever.load(artemis, index, "cpu")
    retriever.memory_gb = 2e-6  # a budget of a few dozen pairs: the gallery is scored in several chunks
    files = [Path(e["file"]) for e in json.loads((index / "images.json").read_text())]
    assert {f.parent for f in files} == {images.resolve()}  # a folder's files stay where they are
    budget = int(retriever.memory_gb * 2**30)
    assert chunk_sizes(1, len(files), retriever.model.score_bytes_per_pair, budget)[1] < len(files) / 3
    hits = retriever.search(reference, line["text"], k=7)
    expected = brute_force(artemis, files, reference, line["text"])[:7]
    assert [h.path for h in hits] == [f for _, f in expected]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], abs=1e-4)
    assert [h.rank for h in hits] == list(range(1, 8))
    assert not gallery_index.uses_dot_product(retriever.model)

    copy = work / "artemis_copy"
    shutil.copytree(artemis, copy)
    assert Retriever.load(copy, index, "cpu").search(reference, line["text"], k=7) == hits  # same files
    with open(copy / "coir_model.json", "a") as handle:
        handle.write("\n")
    with pytest.raises(CoirError, match="not the checkpoint"):
        Retriever.load(copy, index, "cpu")


@pytest.mark.parametrize("family", ["blip", "cmap"])
def test_more_families_search_like_brute_force(mine, artemis, family, tmp_path):
    """CASE (BLIP, dot product) and CMAP (multi-level states, joint score), untrained, on 24 images."""
    from coir.eval import Retriever
    from coir.pipeline.models.blip.tokenizer import train_wordpiece

    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for image in sorted(mine["images"].glob("*.jpg"))[:24]:
        shutil.copy(image, gallery / image.name)
    if family == "blip":
        texts = [json.loads(line)["text"] for line in mine["triplets"].read_text().splitlines()]
        tokenizer = train_wordpiece(texts, tmp_path / "tokenizer", vocab_size=300)
        recipe, overrides = REPO / "configs" / "pretrain" / "case_tiny.yaml", [f"model.tokenizer={tokenizer}"]
    else:
        vocab = mine["work"] / "vocab.json"  # written by the artemis fixture
        overrides = [f"model.vocabulary={vocab}", "model.image_size=32", "model.resize=32"]
        recipe = REPO / "configs" / "methods" / "cmap_tiny.yaml"
    export = untrained_export(recipe, overrides, tmp_path / "export")
    index = tmp_path / "index"
    argv = ["index", "--checkpoint", str(export), "--images", str(gallery), "--out", str(index)]
    assert coir([*argv, "--chunk", "10", "--device", "cpu", "--no-progress"]) == 0
    retriever = Retriever.load(None, index, "cpu")  # the checkpoint recorded in the index
    assert retriever.model.family == family
    reference, text = sorted(gallery.iterdir())[5], "is red and has long sleeves"
    hits = retriever.search(reference, text, k=6)
    expected = brute_force(export, retriever.paths, reference, text)[:6]
    assert [h.path for h in hits] == [f for _, f in expected]
    assert [h.score for h in hits] == pytest.approx([s for s, _ in expected], abs=1e-4)
