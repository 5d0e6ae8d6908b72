"""build_world: the whole synthetic world (COCO/VQA, CIRR, CIRCO, FashionIQ, Shoes, Fashion200k,
MIT-States, truth/, world.json)."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from coir.common.errors import ConfigError
from coir.common.json_io import write_json_atomic
from coir.datasets.records import FASHIONIQ_CATEGORIES
from coir.datasets.synth import (
    circo_world,
    cirr_world,
    fashion200k_world,
    fashion_world,
    mit_states_world,
    shoes_world,
    vqa_world,
)
from coir.datasets.synth.fashion_world import IDENTITIES

FORMAT_VERSION = 1
OUTPUT_FOLDERS = ("coco", "vqa", "cirr", "circo", "fashioniq", "shoes", "fashion200k", "mit_states", "truth")


@dataclass(frozen=True)
class ScaleConfig:
    image_size: int = 64
    vqa_pairs: dict[str, int] = field(default_factory=lambda: {"train2014": 60, "val2014": 40})
    cirr_img_sets: dict[str, int] = field(default_factory=lambda: {"train": 6, "val": 5, "test1": 3})
    circo_queries: dict[str, int] = field(default_factory=lambda: {"val": 6, "test": 4})
    circo_fillers: int = 10  # gallery images that answer no CIRCO query
    fashioniq_families: dict[str, int] = field(default_factory=lambda: {"train": 3, "val": 3, "test": 2})
    shoes_families: dict[str, int] = field(default_factory=lambda: {"train": 4, "test": 4})  # 4 images each
    shoes_cross_split: int = 3  # Shoes triplets whose two images are in different splits (dropped)
    # Fashion200k-format families (4 products each) per category and split
    fashion200k_families: dict[str, int] = field(default_factory=lambda: {"train": 3, "test": 3})
    mit_states_images_per_label: int = 2  # images per "adjective noun" folder
    image_share: float = 0.15  # designed share of image-redundant queries
    text_share: float = 0.15  # designed share of text-redundant queries
    low_agreement_share: float = 0.10  # VQA questions where only 3-6 of 10 annotators agree


SCALES: dict[str, ScaleConfig] = {
    "tiny": ScaleConfig(
        vqa_pairs={"train2014": 100, "val2014": 80},
        cirr_img_sets={"train": 10, "val": 10, "test1": 6},
        circo_queries={"val": 10, "test": 6},
        circo_fillers=16,
        fashioniq_families={"train": 6, "val": 6, "test": 4},
        shoes_families={"train": 8, "test": 6},
    ),
    "small": ScaleConfig(
        vqa_pairs={"train2014": 1600, "val2014": 120},
        cirr_img_sets={"train": 60, "val": 30, "test1": 20},
        circo_queries={"val": 24, "test": 12},
        circo_fillers=40,
        fashioniq_families={"train": 20, "val": 10, "test": 8},
        shoes_families={"train": 32, "test": 12},
        fashion200k_families={"train": 12, "test": 6},
        mit_states_images_per_label=4,
    ),
    "medium": ScaleConfig(
        vqa_pairs={"train2014": 6000, "val2014": 125},
        cirr_img_sets={"train": 300, "val": 30, "test1": 30},
        circo_queries={"val": 40, "test": 20},
        circo_fillers=80,
        fashioniq_families={"train": 24, "val": 12, "test": 10},
        shoes_families={"train": 36, "test": 16},
        shoes_cross_split=6,
        fashion200k_families={"train": 24, "test": 10},
        mit_states_images_per_label=8,
    ),
}


def scale_config(scale: str) -> ScaleConfig:
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    cfg = SCALES[scale]
    for split, n in [*cfg.fashioniq_families.items(), *cfg.fashion200k_families.items()]:
        if n > len(IDENTITIES):
            raise ConfigError(
                f"fashioniq_families.{split}={n}: at most {len(IDENTITIES)} per category and split"
            )
    for split, n in cfg.shoes_families.items():
        if n > shoes_world.MAX_FAMILIES:
            raise ConfigError(f"shoes_families.{split}={n}: at most {shoes_world.MAX_FAMILIES} per split")
    return cfg


def build_world(out: Path, seed: int = 0, scale: str = "tiny", progress: bool = True) -> dict:
    """Render the world into `out` (created) and return the world.json summary."""
    from tqdm import tqdm

    cfg = scale_config(scale)
    out = Path(out)
    if (out / "world.json").is_file():  # a previous world: replace it whole, no stale files left
        for name in OUTPUT_FOLDERS:
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    shares = dict(image_share=cfg.image_share, text_share=cfg.text_share)
    total = sum(
        vqa_world.count_images(seed, s, n, cfg.image_share, cfg.text_share) for s, n in cfg.vqa_pairs.items()
    )
    total += sum(cirr_world.count_images(n) for n in cfg.cirr_img_sets.values())
    total += circo_world.count_images(cfg.circo_queries, cfg.circo_fillers, seed)
    total += sum(
        fashion_world.count_images(n, cfg.image_share, cfg.text_share)
        for n in cfg.fashioniq_families.values()
    )
    total += shoes_world.count_images(cfg.shoes_families)
    total += sum(fashion200k_world.count_images(n) for n in cfg.fashion200k_families.values())
    total += mit_states_world.count_images(cfg.mit_states_images_per_label)
    counts: dict = {"vqa": {}, "cirr": {}, "fashioniq": {}, "fashion200k": {}}
    redundancy: dict = {}
    with tqdm(total=total, desc=f"synth {scale}", unit="img", disable=not progress) as pbar:
        for split, n in cfg.vqa_pairs.items():
            s = vqa_world.build_split(
                out,
                split,
                n,
                seed,
                cfg.image_size,
                low_agreement_share=cfg.low_agreement_share,
                pbar=pbar,
                **shares,
            )
            redundancy[f"lasco/{split.removesuffix('2014')}"] = s.pop("redundancy")
            counts["vqa"][split] = s
        for split, n in cfg.cirr_img_sets.items():
            s = cirr_world.build_split(out, split, n, seed, cfg.image_size, pbar=pbar, **shares)
            redundancy[f"cirr/{split}"] = s.pop("redundancy")
            counts["cirr"][split] = s
        counts["circo"] = circo_world.build(
            out, cfg.circo_queries, cfg.circo_fillers, seed, cfg.image_size, pbar=pbar
        )
        used_asins: set[str] = set()
        for split, n in cfg.fashioniq_families.items():
            s = fashion_world.build_split(
                out, split, n, seed, cfg.image_size, used_asins=used_asins, pbar=pbar, **shares
            )
            redundancy[f"fashioniq/{split}"] = s.pop("redundancy")
            for category in FASHIONIQ_CATEGORIES:
                redundancy[f"fashioniq-{category}/{split}"] = s[category].pop("redundancy")
            counts["fashioniq"][split] = s
        counts["shoes"] = shoes_world.build(
            out, cfg.shoes_families, cfg.shoes_cross_split, seed, cfg.image_size, pbar=pbar
        )
        for split, n in cfg.fashion200k_families.items():
            counts["fashion200k"][split] = fashion200k_world.build_split(
                out, split, n, seed, cfg.image_size, pbar=pbar
            )
        counts["mit_states"] = mit_states_world.build(
            out, cfg.mit_states_images_per_label, seed, cfg.image_size, pbar=pbar
        )
    counts["images"] = total
    summary = {
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "scale": scale,
        "config": asdict(cfg),
        "counts": counts,
        "redundancy": redundancy,
        "files": _file_list(out),
    }
    write_json_atomic(out / "world.json", summary, indent=1)
    return summary


def _file_list(out: Path) -> dict[str, int]:
    """Number of files per top-level folder (a cheap fingerprint; tests hash the files themselves)."""
    result: dict[str, int] = {}
    for top in sorted(p for p in out.iterdir() if p.is_dir()):
        result[top.name] = sum(1 for p in top.rglob("*") if p.is_file())
    return result


def sha256_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under root, keyed by relative path (determinism checks)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
