"""The validator the trainer calls each epoch, for any registered benchmark.

The trainer (pipeline/engine.py) does not import coir.eval: it loads `validator_for` through the
"coir.validation" entry point and asks it for `validation.benchmark`'s validator:

    validate = validator_for("cirr")
    validate(model, data_root, split, device) -> {metric: value, "<part>/<metric>": value, "main": ...}

The headline row's metrics, each part's (FashionIQ: "dress/R@10") and "main", the benchmark's
model-selection measure (CIRR (R@5 + Rs@1) / 2, FashionIQ the mean of R@10 and R@50 over the
categories, LaSCo R@1). The trainer calls it on rank 0 only, so it evaluates in this process alone
(no gallery cache: the weights change every epoch) with the benchmark's default options. When the
images are not under data_root (LaSCo: the COCO root), pass "DATA_ROOT::IMAGE_ROOT".
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from coir.eval.benchmarks import get_benchmark


def validate(
    benchmark: str, model: Any, data_root: str, split: str = "val", device: Any = "cpu"
) -> dict[str, float]:
    from coir.eval.api import evaluate
    from coir.eval.config import EvalConfig
    from coir.eval.encode import local_only

    image_root = None
    if "::" in data_root:
        data_root, image_root = data_root.split("::", 1)
    config = EvalConfig(
        benchmark=benchmark,
        split=split,
        data_root=data_root,
        image_root=image_root,
        model_name="model",
        device=str(device),
        num_workers=0,
        cache=False,
        pictures=False,
    )
    was_training = model.training
    try:
        with local_only():
            evaluation = evaluate(model, config)
    finally:
        model.train(was_training)
    found = get_benchmark(benchmark)
    headline = evaluation.fragment[found.headline(split)]["model"]
    out = {k: float(v) for k, v in headline.items() if k != "queries"}
    for task_results in evaluation.results.values():
        result = task_results[0]
        if result.task.part:
            out |= {f"{result.task.part}/{k}": float(v) for k, v in result.metrics.items() if k != "queries"}
    out["main"] = found.main_measure(headline)
    return out


def validator_for(benchmark: str) -> Callable[..., dict[str, float]]:
    """validate(model, data_root, split, device) for a registered benchmark; ConfigError otherwise."""
    get_benchmark(benchmark)
    return partial(validate, benchmark)
