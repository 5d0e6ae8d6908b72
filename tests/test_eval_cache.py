"""Gallery embedding cache (hit, miss on a changed list) and evaluation on several ranks (gloo)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from coir.eval.config import EvalConfig
from coir.eval.encode import checkpoint_fingerprint, embed_gallery
from coir.eval.runner import run_task
from coir.eval.tasks import Query, Task
from coir.pipeline.models.base import RetrievalModel


class ColourProcessor:
    """Image -> its mean colour [3, 1, 1]; text -> a bag of characters."""

    image_size = 1

    def image(self, image: Image.Image) -> torch.Tensor:
        return torch.tensor(np.asarray(image.convert("RGB"), dtype=np.float32).mean((0, 1)) / 255)[
            :, None, None
        ]

    def passes_through(self, width: int, height: int) -> bool:
        return False  # every image goes through image()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return images  # image() already gives the model's input

    def text(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = torch.zeros((len(texts), 8), dtype=torch.long)
        for i, text in enumerate(texts):
            codes = [ord(c) % 97 for c in text[:8]]
            ids[i, : len(codes)] = torch.tensor(codes)
        return {"input_ids": ids, "attention_mask": (ids > 0).long()}


class ColourModel(RetrievalModel):
    """A tiny deterministic model of the interface; counts how many images it encodes."""

    name = "colour"

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.image_proj = torch.nn.Parameter(torch.randn(3, 8, generator=generator))
        self.text_emb = torch.nn.Parameter(torch.randn(97, 8, generator=generator) * 0.1)
        self.encoded_images = 0

    def encode_target(self, images):
        self.encoded_images += images.shape[0]
        return torch.nn.functional.normalize(images.flatten(1) @ self.image_proj, dim=1)

    def encode_query(self, batch):
        images, input_ids, attention_mask = batch["query_image"], batch["input_ids"], batch["attention_mask"]
        text = (self.text_emb[input_ids] * attention_mask[..., None]).sum(1)
        return torch.nn.functional.normalize(images.flatten(1) @ self.image_proj + text, dim=1)

    def loss(self, batch):
        return {"loss": torch.zeros(())}

    def processor(self):
        return ColourProcessor()

    def export_config(self):
        return {"kind": "colour"}


def write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i}.png"
        Image.new("RGB", (4, 4), ((37 * i) % 256, (91 * i) % 256, (13 * i) % 256)).save(path)
        paths.append(path)
    return paths


def test_cache_hit_skips_encoding_and_a_changed_list_misses(tmp_path):
    paths = write_images(tmp_path / "images", 20)
    model, cache = ColourModel(), tmp_path / "cache"
    fingerprint = "checkpoint-a"
    first = embed_gallery(model, paths, fingerprint, cache, batch_size=8)
    assert model.encoded_images == 20
    again = embed_gallery(model, paths, fingerprint, cache, batch_size=8)
    assert model.encoded_images == 20  # from the cache
    assert torch.equal(first, again)
    embed_gallery(model, paths[:-1], fingerprint, cache, batch_size=8)  # one image fewer
    assert model.encoded_images == 39
    embed_gallery(model, list(reversed(paths)), fingerprint, cache, batch_size=8)  # same images, new order
    assert model.encoded_images == 59
    embed_gallery(model, paths, "checkpoint-b", cache, batch_size=8)  # other weights
    assert model.encoded_images == 79
    embed_gallery(model, paths, None, cache, batch_size=8)  # an in-memory model is never cached
    assert model.encoded_images == 99
    assert len(list(cache.glob("gallery-*.pt"))) == 4


def test_checkpoint_fingerprint_follows_the_weights_file(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    weights = export / "model.safetensors"
    weights.write_bytes(b"1234")
    before = checkpoint_fingerprint(export)
    assert checkpoint_fingerprint(export) == before
    weights.write_bytes(b"12345")
    assert checkpoint_fingerprint(export) != before


def small_task(folder: Path, write: bool = True) -> Task:
    """write=False: the images are already there (ranks must not rewrite files others are reading)."""
    paths = write_images(folder, 23) if write else [folder / f"img{i}.png" for i in range(23)]
    names = [p.stem for p in paths]
    queries = [
        Query(
            key=str(i),
            reference=names[i],
            reference_path=paths[i],
            text=f"make it {'abcdefgh'[i % 8]}",
            target=names[(i * 7 + 3) % 23],
            exclude=(names[i],),
            subset=tuple(names[(i + j) % 23] for j in range(1, 6)),
        )
        for i in range(23)
    ]
    return Task("cirr", "val", "cirr/val", names, paths, queries, (1, 5, 10, 50), (1, 2, 3))


def _worker(rank: int, world_size: int, folder: str, port: int) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        model = ColourModel()
        task = small_task(Path(folder) / "images", write=False)
        result = run_task(model, task, EvalConfig(batch_size=4, memory_gb=1e-6, num_workers=0, device="cpu"))
        np.savez(
            Path(folder) / f"rank{rank}.npz",
            top=result.ranking.top_indices,
            target=result.ranking.target_rank,
            subset=result.ranking.subset_order,
            encoded=model.encoded_images,
        )
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_single_process_result(tmp_path):
    import socket

    import torch.multiprocessing as mp

    config = EvalConfig(batch_size=4, num_workers=0, device="cpu")
    single = run_task(ColourModel(), small_task(tmp_path / "images"), config)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork: the children need no fresh interpreter (spawn would re-import torch in each)
    mp.start_processes(_worker, args=(2, str(tmp_path), port), nprocs=2, join=True, start_method="fork")
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npz")
        assert np.array_equal(got["top"], single.ranking.top_indices)
        assert np.array_equal(got["target"], single.ranking.target_rank)
        assert np.array_equal(got["subset"], single.ranking.subset_order)
        assert int(got["encoded"]) in (11, 12)  # each rank embedded half of the 23 gallery images
    assert single.metrics["queries"] == 23


@pytest.mark.parametrize("bad", ["missing", "corrupt"])
def test_bad_gallery_image_names_the_file(tmp_path, bad):
    from coir.common.errors import CoirError

    paths = write_images(tmp_path / "images", 3)
    if bad == "missing":
        paths[1].unlink()
    else:
        paths[1].write_bytes(b"not an image")
    with pytest.raises(CoirError, match="img1.png"):
        embed_gallery(ColourModel(), paths)


def test_image_rewritten_at_the_same_path_misses_and_a_foreign_payload_is_a_miss(tmp_path):
    paths = write_images(tmp_path / "images", 6)
    model, cache = ColourModel(), tmp_path / "cache"
    first = embed_gallery(model, paths, "ckpt", cache, batch_size=4)
    assert model.encoded_images == 6
    Image.new("RGB", (5, 5), (250, 10, 200)).save(paths[2])  # other bytes (and size), same path
    second = embed_gallery(model, paths, "ckpt", cache, batch_size=4)
    assert model.encoded_images == 12 and not torch.equal(first[2], second[2])
    assert torch.equal(first[[0, 1, 3, 4, 5]], second[[0, 1, 3, 4, 5]])
    stat = paths[3].stat()
    os.utime(paths[3], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: also a miss
    embed_gallery(model, paths, "ckpt", cache, batch_size=4)
    assert model.encoded_images == 18
    for entry in cache.glob("gallery-*.pt"):
        torch.save([1, 2, 3], entry)  # not a dict: recomputed, never a crash
    again = embed_gallery(model, paths, "ckpt", cache, batch_size=4)
    assert model.encoded_images == 24 and again.dtype == torch.float32


class HalfColourModel(ColourModel):
    """Computes in float16 (as a model under autocast or in half precision would)."""

    def encode_target(self, images):
        return super().encode_target(images).half()

    def encode_query(self, batch):
        return super().encode_query(batch).half()


def test_embeddings_are_float32_on_one_rank_too(tmp_path):
    from coir.eval.encode import encode_images, encode_queries

    paths = write_images(tmp_path / "images", 3)
    model = HalfColourModel()
    assert encode_images(model, paths, batch_size=2).dtype == torch.float32
    assert encode_queries(model, paths, ["a", "b", "c"], batch_size=2).dtype == torch.float32
    assert embed_gallery(model, paths, "ckpt", tmp_path / "cache").dtype == torch.float32
    assert embed_gallery(model, paths, "ckpt", tmp_path / "cache").dtype == torch.float32  # cached


class FailingColourModel(ColourModel):
    """Stops (as a killed run would) once it has encoded `limit` images."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def encode_target(self, images):
        if self.encoded_images + images.shape[0] > self.limit:
            raise KeyboardInterrupt("interrupted")
        return super().encode_target(images)


def test_an_interrupted_gallery_resumes_from_its_saved_parts(tmp_path):
    paths = write_images(tmp_path / "images", 22)
    cache = tmp_path / "cache"
    reference = embed_gallery(ColourModel(), paths, None, None, batch_size=4)
    broken = FailingColourModel(limit=13)  # parts of 5: parts 0 and 1 finish, part 2 breaks
    with pytest.raises(KeyboardInterrupt):
        embed_gallery(broken, paths, "ckpt", cache, batch_size=5, part_size=5)
    assert sorted(p.name for p in cache.glob("gallery-*.parts/part-*.pt")) == [
        "part-000000.pt",
        "part-000001.pt",
    ]
    resumed = ColourModel()
    state = embed_gallery(resumed, paths, "ckpt", cache, batch_size=5, part_size=5)
    assert resumed.encoded_images == 12  # parts 2, 3 and 4 (5 + 5 + 2 images), not the saved 10
    assert torch.allclose(state, reference)
    assert not list(cache.glob("gallery-*.parts")) and len(list(cache.glob("gallery-*.pt"))) == 1
    again = ColourModel()
    assert torch.equal(embed_gallery(again, paths, "ckpt", cache, part_size=5), state)
    assert again.encoded_images == 0  # the whole cache file now
