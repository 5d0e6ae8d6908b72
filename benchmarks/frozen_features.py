"""A frozen-backbone training step from images against the same step from precomputed features.

ARTEMIS with `model.freeze_backbone: true` (the published CIRR setting: a frozen ResNet-152, average
pooled, through a trained linear layer): one optimizer step (loss, backward, AdamW) on a batch of
`--batch` triplets given as images [B, 3, S, S] (what `data.inputs: images` feeds: the frozen CNN runs
on every step) and as the CNN's pooled features [B, C] (what `data.inputs: features` feeds, from
`coir data features`). Both steps run alternately in this process on the same weights and texts, so the
machine's load falls on both; the figure is samples/s of each and their ratio. The JPEG decoding that
features also skip is not counted: the ratio is the model's side only.

    python benchmarks/frozen_features.py                                   # resnet152 at 224 px, batch 16
    python benchmarks/frozen_features.py --backbone resnet50 --image-size 224 --batch 32 --repeats 5
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="resnet152", choices=("resnet18", "resnet50", "resnet152"))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed steps of each kind (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()

    import torch

    from coir.datasets.vocab import Vocabulary
    from coir.pipeline.models.artemis.config import ArtemisModelConfig
    from coir.pipeline.models.artemis.model import Artemis

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    words = ["the", "shirt", "is", "red", "blue", "longer", "with", "stripes"]
    cfg = ArtemisModelConfig(
        backbone=args.backbone, pooling="avg", freeze_backbone=True, image_size=args.image_size,
        resize=args.image_size,
    )  # fmt: skip
    model = Artemis(cfg, Vocabulary(words), load_weights=False)
    model.train()
    frozen = model.frozen_image_features()
    assert frozen is not None
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    b = args.batch
    images = torch.randn(2, b, 3, args.image_size, args.image_size)
    text = model.processor().text([" ".join(words[i % 8 : i % 8 + 4]) for i in range(b)])
    with torch.no_grad():
        features = torch.stack([frozen.module(images[0]), frozen.module(images[1])])
    batches = {
        "images": {"query_image": images[0], "target_image": images[1], **text},
        "features": {"query_feature": features[0], "target_feature": features[1], **text},
    }

    def step(batch: dict) -> float:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch)["loss"].backward()
        optimizer.step()
        return time.perf_counter() - start

    for batch in batches.values():
        step(batch)  # warm-up
    seconds = {kind: 0.0 for kind in batches}
    for _ in range(args.repeats):
        for kind, batch in batches.items():
            seconds[kind] += step(batch)
    rate = {kind: args.repeats * b / s for kind, s in seconds.items()}
    print(
        f"ARTEMIS {args.backbone} (frozen, avg pooling) {args.image_size} px, batch {b}, "
        f"{torch.get_num_threads()} threads, {args.repeats} steps each"
    )
    print("| inputs | samples/s | step (s) |\n| --- | ---: | ---: |")
    for kind in batches:
        print(f"| {kind} | {rate[kind]:.1f} | {seconds[kind] / args.repeats:.3f} |")
    print(f"features / images: {rate['features'] / rate['images']:.1f}x")


if __name__ == "__main__":
    main()
