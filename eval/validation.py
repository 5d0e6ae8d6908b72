"""The validator the trainer calls each epoch, for any registered benchmark.

The trainer (pipeline/engine.py) does not import coir.eval: it loads `validator_for` through the
"coir.validation" entry point and asks it for `validation.benchmark`'s validator:

    validate = validator_for("cirr")
    validate(model, data_root, split, device) -> {metric: value, "<part>/<metric>": value, "main": ...}

The headline row's metrics, each part's (FashionIQ: "dress/R@10") and "main", the benchmark's
model-selection measure (CIRR (R@5 + Rs@1) / 2, FashionIQ the mean of R@10 and R@50 over the
categories, LaSCo R@1). The trainer calls it on rank 0 only, so it evaluates in this process alone
(no gallery cache: the weights change every epoch) with the benchmark's options given to validator_for
(validation.options of the run config; the benchmark's defaults otherwise). When the
images are not under data_root (LaSCo: the COCO root), pass "DATA_ROOT::IMAGE_ROOT".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from coir.common.errors import ConfigError
from coir.eval.benchmarks import get_benchmark
from coir.eval.config import EvalConfig, check_eval_config


def validate(
    benchmark: str,
    options: dict[str, Any],
    model: Any,
    data_root: str,
    split: str = "val",
    device: Any = "cpu",
) -> dict[str, float]:
    from coir.eval.api import evaluate
    from coir.eval.encode import local_only

    image_root = None
    if "::" in data_root:
        data_root, image_root = data_root.split("::", 1)
    config = replace(
        _config(benchmark, options),
        split=split,
        data_root=data_root,
        image_root=image_root,
        device=str(device),
    )
    was_training = model.training
    try:
        with local_only():
            evaluation = evaluate(model, config)
    finally:
        model.train(was_training)
    found = get_benchmark(benchmark)
    headline = evaluation.fragment[found.headline(split)]["model"]
    out = {k: float(v) for k, v in headline.items() if k != "queries" and not isinstance(v, str)}
    for task_results in evaluation.results.values():
        result = task_results[0]
        if result.task.part:
            out |= {
                f"{result.task.part}/{k}": float(v)
                for k, v in result.metrics.items()
                if k != "queries" and not isinstance(v, str)
            }
    out["main"] = found.main_measure(headline)
    return out


def _config(benchmark: str, options: dict[str, Any]) -> EvalConfig:
    return EvalConfig(
        benchmark=benchmark,
        options={benchmark: dict(options)} if options else {},
        model_name="model",
        num_workers=0,
        cache=False,
        pictures=False,
    )


def validator_for(
    benchmark: str, options: dict[str, Any] | None = None, split: str | None = None
) -> Callable[..., dict[str, float]]:
    """validate(model, data_root, split, device) for a registered benchmark with its `options` (the keys
    of `coir eval`'s options.<benchmark>). ConfigError naming the run config's key (validation.benchmark,
    validation.options, validation.split) on an unknown benchmark, option or split (None: checked per
    call, as benchmarks differ: Shoes has train and test, no val)."""
    try:
        found = get_benchmark(benchmark)
    except ConfigError as error:
        raise ConfigError(f"key 'validation.benchmark': {error}") from None
    config = _config(benchmark, options or {})
    try:  # the options and the split, before any training step
        check_eval_config(replace(config, data_root=".", split=split or found.splits[0]))
    except ConfigError as error:
        message = str(error).replace(f"options.{benchmark}", "validation.options")
        raise ConfigError(message.replace("key 'split'", "key 'validation.split'")) from None
    return partial(validate, benchmark, options or {})
