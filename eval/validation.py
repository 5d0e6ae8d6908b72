"""Validators the trainer calls each epoch (registered under the "coir.validators" entry points).

validate(model, data_root, split, device) -> {metric: value, "main": the model-selection measure}:
CIRR (R@5 + Rs@1) / 2, FashionIQ the mean of R@10 and R@50 over the categories, LaSCo R@1.
The trainer calls them on rank 0 only, so they evaluate in this process alone (no gallery cache:
the weights change every epoch). For LaSCo, data_root is the folder of lasco_val.json and the COCO
images must sit under it (val2014/) — or pass "LASCO_DIR::COCO_ROOT".
"""

from __future__ import annotations

from typing import Any

from coir.eval.metrics import main_measure


def _validate(model: Any, benchmark: str, data_root: str, split: str, device: Any) -> dict[str, float]:
    from coir.eval.api import evaluate
    from coir.eval.encode import local_only

    image_root = None
    if "::" in data_root:
        data_root, image_root = data_root.split("::", 1)
    was_training = model.training
    try:
        with local_only():
            fragment = evaluate(
                model,
                benchmark,
                split,
                data_root,
                image_root=image_root,
                device=str(device),
                cache=False,
                pictures=False,
                model_name="model",
            )
    finally:
        model.train(was_training)
    headline = fragment[f"{benchmark}/{split}"]["model"]
    out = {k: float(v) for k, v in headline.items() if k != "queries"}
    if benchmark == "fashioniq":
        for task, models in fragment.items():
            if task.startswith("fashioniq-"):
                category = task.split("/")[0].removeprefix("fashioniq-")
                out |= {f"{category}/{k}": float(v) for k, v in models["model"].items() if k != "queries"}
    out["main"] = main_measure(benchmark, headline)
    return out


def validate_cirr(model: Any, data_root: str, split: str = "val", device: Any = "cpu") -> dict[str, float]:
    return _validate(model, "cirr", data_root, split, device)


def validate_fashioniq(
    model: Any, data_root: str, split: str = "val", device: Any = "cpu"
) -> dict[str, float]:
    return _validate(model, "fashioniq", data_root, split, device)


def validate_lasco(model: Any, data_root: str, split: str = "val", device: Any = "cpu") -> dict[str, float]:
    return _validate(model, "lasco", data_root, split, device)
