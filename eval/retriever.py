"""Query a trained model's gallery index (coir.eval.gallery_index) with a reference image and a text.

    from coir.eval import Retriever
    r = Retriever.load("runs/mine/train/export", "runs/mine/index")
    hits = r.search("query.jpg", "is blue with long sleeves", k=10)   # [Hit(rank, score, name, path)]

Every model family works: the gallery state is what its encode_target gave, and the ranking calls
its own `score` over gallery chunks (coir.eval.ranking), so a late-fusion model (ARTEMIS …) is scored
jointly. For a dot-product model whose index has a faiss file, faiss answers when installed
(`backend`); exact search gives the same ranking.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coir.common.errors import CoirError, DataFormatError, MissingInputError
from coir.eval.encode import load_cached
from coir.eval.gallery_index import FAISS, IMAGES, INFO, STATE, checkpoint_identity, entry_file, faiss_module
from coir.eval.ranking import Ranking, chunk_sizes, rank
from coir.pipeline.models.base import prompt_text
from coir.pipeline.models.pixels import to_model_inputs
from coir.pipeline.models.state import State, tree_to


@dataclass(frozen=True)
class Hit:
    rank: int  # 1-based
    score: float
    name: str  # the image's name in the gallery (its path under the indexed folder)
    path: Path  # the image file


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Retriever:
    def __init__(
        self,
        model: Any,
        index_dir: str | Path,
        device: str | None = None,
        exact: bool = False,
        memory_gb: float = 2.0,
    ) -> None:
        """`model`: the export the index was built with (loaded); `exact`: never use faiss."""
        index = Path(index_dir)
        if not (index / INFO).is_file():
            raise MissingInputError(index / INFO, "gallery index (build it with coir index)")
        self.index_dir, self.device, self.memory_gb = index, device or _default_device(), memory_gb
        self.info = json.loads((index / INFO).read_bytes())
        entries = json.loads((index / IMAGES).read_bytes())
        self.names = [e["name"] for e in entries]
        self.paths = [entry_file(index, e) for e in entries]
        plan = self.info["plan"]
        state = load_cached(index / STATE, plan["images_sha256"], len(entries))
        if state is None:
            raise DataFormatError(index / STATE, "damaged or from another image list: rebuild the index")
        self.gallery: State = tree_to(state, self.device)
        self.model = model.to(self.device).eval()
        if (model.family, model.name) != (plan["model"]["family"], plan["model"]["name"]):
            raise CoirError(
                f"{index} was built with a {plan['model']} model, not {model.family}/{model.name}"
            )
        faiss = None if exact or self.info["search"] != "dot_product" else faiss_module()
        self.faiss_index = (
            faiss.read_index(str(index / FAISS)) if faiss and (index / FAISS).is_file() else None
        )

    @property
    def backend(self) -> str:
        return "faiss" if self.faiss_index is not None else "exact"

    @classmethod
    def load(
        cls,
        checkpoint: str | Path | None,
        index_dir: str | Path,
        device: str | None = None,
        exact: bool = False,
    ) -> Retriever:
        """The index and its model: `checkpoint` (None: the one recorded in the index) must have the
        files the index was built from (a copy elsewhere is fine)."""
        from coir.pipeline.models.export import load_export

        info_path = Path(index_dir) / INFO
        if not info_path.is_file():
            raise MissingInputError(info_path, "gallery index (build it with coir index)")
        recorded = json.loads(info_path.read_bytes())["plan"]["checkpoint"]
        checkpoint = Path(checkpoint if checkpoint is not None else recorded["path"])
        if checkpoint_identity(checkpoint)["sha256"] != recorded["sha256"]:
            raise CoirError(
                f"{checkpoint}: not the checkpoint {index_dir} was built from ({recorded['path']}); "
                "rebuild the index with coir index"
            )
        device = device or _default_device()
        return cls(load_export(checkpoint, device=device), index_dir, device, exact)

    @torch.no_grad()
    def query_state(self, image: str | Path | Any, text: str) -> State:
        """The model's query state for one reference image (a path or a PIL image) and text."""
        from PIL import Image

        from coir.eval.encode import _load_image

        picture = image if isinstance(image, Image.Image) else _load_image(Path(image))
        processor = self.model.processor()
        text = prompt_text(self.model.query_prompt(None), text)
        batch = {"query_image": processor.image(picture.convert("RGB"))[None], **processor.text([text])}
        return self.model.encode_query(to_model_inputs(batch, processor, self.device))

    @torch.no_grad()
    def ranking(self, image: str | Path | Any, text: str, k: int = 10) -> Ranking:
        """The top k of the gallery (indices and scores, as coir.eval.ranking gives them)."""
        query = self.query_state(image, text)
        k = max(1, min(int(k), len(self.names)))
        if self.faiss_index is not None:
            scores, indices = self.faiss_index.search(query.float().cpu().numpy(), k)
            none = np.full((1,), -1, dtype=np.int64)
            return Ranking(indices.astype(np.int64), scores.astype(np.float32), none, none[:, None], none)
        _, gallery_chunk = chunk_sizes(
            1, len(self.names), getattr(self.model, "score_bytes_per_pair", 0), int(self.memory_gb * 2**30)
        )
        return rank(query, self.gallery, k=k, score_fn=self.model.score, gallery_chunk=gallery_chunk)

    def search(self, image: str | Path | Any, text: str, k: int = 10) -> list[Hit]:
        """The k best gallery images for the reference image (a path or a PIL image) and the text."""
        result = self.ranking(image, text, k)
        return [
            Hit(position + 1, float(score), self.names[i], self.paths[i])
            for position, (i, score) in enumerate(
                zip(result.top_indices[0], result.top_scores[0], strict=True)
            )
            if i >= 0
        ]

    def picture(self, image: str | Path | Any, text: str, hits: list[Hit], path: str | Path) -> Path:
        """A PNG of the query (reference and text) and its hits, with eval's retrieval picture."""
        from coir.eval.report import retrieval_grid
        from coir.eval.runner import TaskResult
        from coir.eval.tasks import Query, Task

        with tempfile.TemporaryDirectory() as scratch:
            if isinstance(image, (str, Path)):
                reference = Path(image)
            else:
                reference = Path(scratch) / "query.png"
                image.convert("RGB").save(reference)
            query = Query("query", reference.name, reference, text, None)
            task = Task("custom", "", "search", self.names, self.paths, [query], ks=())
            position = {name: i for i, name in enumerate(self.names)}
            top = np.array([[position[h.name] for h in hits]], dtype=np.int64)
            scores = np.array([[h.score for h in hits]], dtype=np.float32)
            none = np.full((1,), -1, dtype=np.int64)
            result = TaskResult(task, self.model.name, Ranking(top, scores, none, none[:, None], none), {})
            return retrieval_grid(result, path, queries=[0], top=max(1, len(hits)))
