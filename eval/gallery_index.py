"""A gallery embedded once by a trained model, to search with coir.eval.retriever (`coir index`).

    INDEX/index.json    written last (a folder with it is complete): the checkpoint's identity (path and
                        sha256 of its files), the model, its transform, the image count, the search kind
    INDEX/images.json   [{"name": shown name, "file": image file}] in gallery order (a file extracted
                        into INDEX/images/ is relative to INDEX, so the folder can move)
    INDEX/gallery.pt    the gallery state: model.encode_target of every image (a tensor or a tree of
                        tensors, float32), whatever the family
    INDEX/faiss.index   exact inner-product faiss index, only for a dot-product model with faiss installed
    INDEX/images/       the images of a gallery shard folder, extracted (files under a folder stay there)

The build embeds the images in chunks, each saved under INDEX/_parts/ when done (atomically) beside a
plan (checkpoint, model, transform, image list): an interrupted run, rerun with the same arguments,
continues with the first missing chunk; other arguments on a partial index are an error.

A model that keeps the default `score` (a dot product of embeddings) can be searched by faiss; a
late-fusion model (ARTEMIS, CMAP, MANME …) scores every (query, image) pair jointly with its own
`score`, so its index is searched exactly, in chunks (coir.eval.ranking).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path
from typing import Any

import torch

from coir.common.atomic import write_bytes_atomic
from coir.common.errors import CoirError, DataFormatError, MissingInputError
from coir.common.json_io import dump_json
from coir.eval.encode import encode_images, load_cached, save_atomic, transform_identity
from coir.pipeline.models.base import RetrievalModel
from coir.pipeline.models.state import tree_cat, tree_len, tree_map

INDEX_VERSION = 1
INFO, IMAGES, STATE, FAISS, PARTS, PLAN = (
    "index.json", "images.json", "gallery.pt", "faiss.index", "_parts", "plan.json",
)  # fmt: skip
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def uses_dot_product(model: Any) -> bool:
    """True when the model ranks by the base class's dot product (so faiss can search its gallery)."""
    return getattr(type(model), "score", None) is RetrievalModel.score


def faiss_module() -> Any:
    """faiss when installed, else None (an optional speed-up: exact search gives the same ranking)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def checkpoint_identity(checkpoint: str | Path) -> dict[str, str]:
    """The export's resolved path and a sha256 over its files' names and bytes (a copy matches)."""
    root = Path(checkpoint).resolve()
    if not root.is_dir():
        raise MissingInputError(root, "model export directory")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"\0{path.relative_to(root).as_posix()}\0".encode())
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    return {"path": str(root), "sha256": digest.hexdigest()}


# ---------------------------------------------------------------- the gallery's images


def _is_shard_folder(source: Path) -> bool:
    return any(source.glob("gallery-*.tar"))


def _folder_images(source: Path, out: Path) -> list[dict[str, str]]:
    out = out.resolve()
    files = []
    for path in source.rglob("*"):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and out not in path.resolve().parents:
            files.append(path)
    return [{"name": p.relative_to(source).as_posix(), "file": str(p.resolve())} for p in sorted(files)]


def _shard_images(source: Path, out: Path) -> list[dict[str, str]]:
    """Extract the images of gallery-*.tar into out/images/<key>.jpg (once); names from their json."""
    entries = []
    for shard in sorted(source.glob("gallery-*.tar")):
        members: dict[str, dict[str, bytes]] = {}
        try:
            with tarfile.open(shard) as tar:
                for member in tar:
                    key, _, suffix = member.name.partition(".")
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        members.setdefault(key, {})[suffix] = handle.read()
        except tarfile.TarError as error:
            raise DataFormatError(shard, f"not a readable tar: {error}") from None
        for key, sample in members.items():
            if "jpg" not in sample:
                raise DataFormatError(shard, "a gallery sample without its jpg", index=key)
            meta = json.loads(sample.get("json", b"{}"))
            file = out / "images" / f"{key}.jpg"
            if not file.is_file():
                write_bytes_atomic(file, sample["jpg"], fsync=False)
            entries.append(
                {"name": str(meta.get("path") or meta.get("id") or key), "file": f"images/{key}.jpg"}
            )
    return entries


def entry_file(index_dir: Path, entry: dict[str, str]) -> Path:
    """The image file of an images.json entry (relative ones are inside the index folder)."""
    return index_dir / entry["file"]  # an absolute "file" stays as it is


def gallery_images(source: str | Path, out: str | Path) -> list[dict[str, str]]:
    """The gallery's images in order: every image file under a folder (sorted by relative path), or
    the images of a gallery shard folder (gallery-*.tar, extracted into out/images/)."""
    source = Path(source)
    if not source.is_dir():
        raise MissingInputError(source, "gallery folder")
    entries = (
        _shard_images(source, Path(out)) if _is_shard_folder(source) else _folder_images(source, Path(out))
    )
    if not entries:
        raise DataFormatError(
            source, f"no images ({', '.join(IMAGE_SUFFIXES)} files or gallery-*.tar shards)"
        )
    names = [e["name"] for e in entries]
    if len(set(names)) != len(names):
        raise DataFormatError(source, "two gallery images share a name")
    return entries


# ---------------------------------------------------------------- building


def _plan(
    identity: dict[str, str], source: Path, model: Any, entries: list[dict[str, str]], chunk: int
) -> dict[str, Any]:
    listing = hashlib.sha256(dump_json(entries)).hexdigest()
    return {
        "version": INDEX_VERSION,
        "checkpoint": identity,
        "source": str(source.resolve()),
        "model": {"family": model.family, "name": model.name},
        "transform": transform_identity(model.processor()),
        "num_images": len(entries),
        "images_sha256": listing,
        "chunk": chunk,
    }


def _refuse_other(out: Path, source: Path, identity: dict[str, str]) -> None:
    """Stop before touching `out` when it holds an index (finished or partial) of another gallery
    folder or checkpoint."""
    for path in (out / INFO, out / PARTS / PLAN):
        if path.is_file():
            data = json.loads(path.read_bytes())
            plan = data.get("plan", data)
            if (plan.get("source"), plan.get("checkpoint")) != (str(source.resolve()), identity):
                by = (plan.get("checkpoint") or {}).get("path")
                raise CoirError(
                    f"{out} holds an index of {plan.get('source')} by {by}; "
                    "use another --out or delete that folder"
                )


def _start(out: Path, plan: dict[str, Any]) -> bool:
    """Check or write the plan; True when the index is already complete with it."""
    plan_bytes = dump_json(plan, indent=1)
    if (out / INFO).is_file():
        info = json.loads((out / INFO).read_bytes())
        if info.get("plan") == plan:
            return True
        raise CoirError(
            f"{out} holds a finished index of other images or another checkpoint; use another --out"
        )
    plan_path = out / PARTS / PLAN
    if plan_path.is_file() and plan_path.read_bytes() != plan_bytes:
        raise CoirError(
            f"{out} holds a partial index made with other arguments ({plan_path} differs); "
            "rerun with the original ones, use another --out, or delete that folder"
        )
    write_bytes_atomic(plan_path, plan_bytes)
    return False


def _progress(total: int, done: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total, initial=done, disable=not enabled, desc="index", unit="image", dynamic_ncols=True
    )


@torch.no_grad()
def build_index(
    checkpoint: str | Path,
    source: str | Path,
    out: str | Path,
    batch_size: int = 64,
    chunk: int = 1024,
    device: str = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    model: Any = None,
) -> dict[str, Any]:
    """Embed the gallery under `source` with the export `checkpoint` into the index folder `out`;
    returns index.json's content. `model`: the export, already loaded (else loaded here)."""
    from coir.pipeline.models.export import load_export

    out = Path(out)
    identity = checkpoint_identity(checkpoint)
    _refuse_other(out, Path(source), identity)
    model = model if model is not None else load_export(checkpoint, device=device)
    model.eval()
    entries = gallery_images(source, out)
    plan = _plan(identity, Path(source), model, entries, chunk)
    if _start(out, plan):
        return json.loads((out / INFO).read_bytes())
    starts = list(range(0, len(entries), chunk))
    parts = [out / PARTS / f"part-{i:06d}.pt" for i in range(len(starts))]
    done = sum(min(chunk, len(entries) - s) for s, p in zip(starts, parts, strict=True) if p.is_file())
    with _progress(len(entries), done, progress) as bar:
        for start, part in zip(starts, parts, strict=True):
            if part.is_file():
                continue
            files = [entry_file(out, e) for e in entries[start : start + chunk]]
            state = encode_images(model, files, batch_size, device, num_workers)
            save_atomic(part, {"key": plan["images_sha256"], "state": tree_map(lambda t: t.cpu(), state)})
            bar.update(len(files))
    states = []
    for start, part in zip(starts, parts, strict=True):
        state = load_cached(part, plan["images_sha256"], min(chunk, len(entries) - start))
        if state is None:
            raise DataFormatError(part, "a damaged part of the index: delete it and rerun")
        states.append(state)
    gallery = tree_cat(states)
    save_atomic(out / STATE, {"key": plan["images_sha256"], "state": gallery})
    write_bytes_atomic(out / IMAGES, dump_json(entries, indent=1))
    dot = uses_dot_product(model)
    faiss = faiss_module() if dot and isinstance(gallery, torch.Tensor) and gallery.ndim == 2 else None
    if faiss is not None:
        index = faiss.IndexFlatIP(gallery.shape[1])
        index.add(gallery.numpy().astype("float32"))
        faiss.write_index(index, str(out / FAISS))
    info = {
        "plan": plan,
        "num_images": tree_len(gallery),
        "search": "dot_product" if dot else "model_score",
        "faiss": faiss is not None,
    }
    write_bytes_atomic(out / INFO, dump_json(info, indent=1))
    for part in parts:
        part.unlink(missing_ok=True)
    (out / PARTS / PLAN).unlink(missing_ok=True)
    (out / PARTS).rmdir()
    return info
