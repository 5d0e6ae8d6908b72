"""`coir data inspect DIR`: manifest summary, sha256 check of every shard, a few samples, contact sheet."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from coir.common import fields

HELP = "summarise and verify a shard folder (sha256 of every shard), show samples, draw a contact sheet"
EXAMPLE = """\
coir data inspect runs/lasco/triplets
coir data inspect runs/lasco            # every shard folder below it (triplets/, gallery/ …)
coir data inspect runs/lasco/triplets --samples 8 --contact-sheet sheet.png"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="a shard folder (with manifest.json) or a folder of them")
    parser.add_argument("--samples", type=int, default=3, metavar="N", help="samples to show (default 3)")
    parser.add_argument("--contact-sheet", metavar="PNG", help="write a PNG grid of the shown samples")
    parser.add_argument("--no-verify", action="store_true", help="skip the sha256 check")


def shard_folders(root: Path) -> list[Path]:
    from coir.common.errors import MissingInputError

    if (root / "manifest.json").is_file():
        return [root]
    found = sorted(p.parent for p in root.glob("*/manifest.json"))
    if not found:
        raise MissingInputError(
            root / "manifest.json", "shard manifest (no shard folder here or one level below)"
        )
    return found


def read_samples(folder: Path, count: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The first `count` samples of the first shards, as {field: bytes} with `__key__`, and a line for
    each shard that could not be read to the end (truncated, not a tar …; its samples before the break
    are kept)."""
    from coir.common.tar_members import TarReadError, tar_members
    from coir.datasets.shards.manifest import read_manifest

    samples: list[dict[str, Any]] = []
    unreadable: list[str] = []
    for shard in read_manifest(folder)["shards"]:
        path = folder / shard["name"]
        try:  # the training loader's tar reader: a damaged shard is reported with the byte where it breaks
            with open(path, "rb") as stream:
                for name, data in tar_members(stream):
                    key, _, field = name.partition(".")
                    if not samples or samples[-1]["__key__"] != key:
                        if len(samples) == count:
                            return samples, unreadable
                        samples.append({"__key__": key})
                    samples[-1][field] = data
        except (TarReadError, OSError, EOFError) as error:
            unreadable.append(f"{path}: unreadable ({type(error).__name__}: {error})")
        if len(samples) >= count:
            break
    return samples[:count], unreadable


def describe(sample: dict[str, Any]) -> str:
    parts = [f"  {sample['__key__']}:"]
    for field, value in sample.items():
        if field == "__key__":
            continue
        if field == fields.TEXT:
            parts.append(f"txt={value.decode()!r}")
        elif field == fields.META:
            parts.append(f"json={json.dumps(json.loads(value), ensure_ascii=False)[:160]}")
        else:
            parts.append(f"{field}={len(value)} B")
    return " ".join(parts)


def contact_sheet(rows: list[tuple[str, dict[str, Any]]], path: str | Path, thumb: int = 160) -> Path:
    """A PNG with one row per sample: its images side by side, then its key and text."""
    import io
    import textwrap

    from PIL import Image, ImageDraw

    width_images = max((sum(1 for f in s if f.endswith(("jpg", "png"))) for _, s in rows), default=1)
    text_width = 360
    sheet = Image.new(
        "RGB", (max(1, width_images) * (thumb + 8) + text_width, max(1, len(rows)) * (thumb + 8)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for r, (folder_name, sample) in enumerate(rows):
        y = r * (thumb + 8) + 4
        x = 4
        for field, value in sample.items():
            if field.endswith(("jpg", "png")):
                image = Image.open(io.BytesIO(value)).convert("RGB")
                image.thumbnail((thumb, thumb))
                sheet.paste(image, (x, y))
                draw.text((x, y + image.height - 12), field, fill="yellow")
                x += thumb + 8
        text = sample.get(fields.TEXT, b"").decode()
        caption = f"{folder_name}/{sample['__key__']}\n" + "\n".join(textwrap.wrap(text, 48)[:8])
        draw.multiline_text((width_images * (thumb + 8) + 4, y), caption, fill="black")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG")
    return path


def run(args: argparse.Namespace) -> int:
    from coir.datasets.shards.manifest import read_manifest, verify_folder

    root = Path(args.dir)
    failed = False
    shown: list[tuple[str, dict[str, Any]]] = []
    for folder in shard_folders(root):
        manifest = read_manifest(folder)
        print(
            f"{folder}: {manifest['kind']} of {manifest.get('dataset', '?')} {manifest.get('split', '')}: "
            f"{manifest['num_samples']} samples in {manifest['num_shards']} shards, "
            f"{manifest['num_errors']} skipped inputs {manifest['errors_by_reason']}"
        )
        print(
            f"  built by coir {manifest['code_version'].get('coir')} "
            f"(commit {manifest['code_version'].get('git_commit') or 'unknown'})"
        )
        if not args.no_verify:
            problems = verify_folder(folder, progress=sys.stderr.isatty())
            for problem in problems:
                print(f"  CORRUPT {problem}")
            if problems:
                failed = True
            else:
                print(f"  verified sha256 of {manifest['num_shards']} shards: OK")
        samples, unreadable = read_samples(folder, args.samples)
        for problem in unreadable:
            print(f"  CORRUPT {problem}")
            failed = True
        for sample in samples:
            print(describe(sample))
            shown.append((folder.name, sample))
    if args.contact_sheet:
        print(f"contact sheet: {contact_sheet(shown, args.contact_sheet)}")
    if failed:
        print("coir: error: some shards do not match their manifest (see CORRUPT lines)", file=sys.stderr)
        return 1
    return 0
