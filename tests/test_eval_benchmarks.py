"""The benchmark registry, per-benchmark options (FashionIQ's caption orders) and the EvalConfig flags
of `coir eval`, on small hand-written files (no model)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from coir.common.config import load_config
from coir.common.errors import ConfigError
from coir.eval.benchmarks import benchmark_names, get_benchmark
from coir.eval.config import EvalConfig, check_eval_config

CAPTIONS = {
    "dress": [
        ("B01", "B02", ["is red.", "has long sleeves"]),
        ("B02", "B03", ["is shorter", " and plain?"]),
        ("B03", "B01", ["Has a LOGO", "is blue"]),
    ],
    "shirt": [("S01", "S02", ["is striped", "has a collar"])],
}


@pytest.fixture()
def fashioniq_root(tmp_path: Path) -> Path:
    """FashionIQ val files as the official ones are laid out: 3 dress and 1 shirt triplets."""
    root = tmp_path / "fashioniq"
    (root / "captions").mkdir(parents=True)
    (root / "image_splits").mkdir()
    for category, rows in CAPTIONS.items():
        triplets = [{"target": t, "candidate": c, "captions": caps} for c, t, caps in rows]
        (root / "captions" / f"cap.{category}.val.json").write_text(json.dumps(triplets, indent=4))
        asins = sorted({c for c, _, _ in rows} | {t for _, t, _ in rows})
        (root / "image_splits" / f"split.{category}.val.json").write_text(json.dumps(asins))
    (root / "captions" / "cap.toptee.val.json").write_text("[]")
    (root / "image_splits" / "split.toptee.val.json").write_text("[]")
    return root


def fashioniq_config(root: Path, *overrides: str) -> EvalConfig:
    config = load_config(EvalConfig, overrides=["benchmark=fashioniq", f"data_root={root}", *overrides])
    check_eval_config(config)
    return config


def test_registry_lists_each_benchmark_once_under_its_module_name():
    assert benchmark_names() == ["circo", "cirr", "fashion200k", "fashioniq", "lasco", "mit_states", "shoes"]
    for name in benchmark_names():
        benchmark = get_benchmark(name)
        assert benchmark.name == name and type(benchmark).__module__ == f"coir.eval.benchmarks.{name}"
    with pytest.raises(ConfigError, match="'cirrr'.*cirr, fashion200k, fashioniq, lasco"):
        get_benchmark("cirrr")


def test_fashioniq_both_caption_orders_doubles_the_queries(fashioniq_root):
    from coir.eval.runner import task_metrics

    benchmark = get_benchmark("fashioniq")
    given = benchmark.tasks(fashioniq_config(fashioniq_root, "options.fashioniq.categories=[dress]"))
    both = benchmark.tasks(
        fashioniq_config(
            fashioniq_root, "options.fashioniq.categories=[dress]", "options.fashioniq.caption_orders=both"
        )
    )
    assert [t.name for t in both] == ["fashioniq-dress/val"]
    assert [q.text for q in given[0].queries] == [
        "Is red and has long sleeves",
        "Is shorter and and plain",
        "Has a logo and is blue",
    ]
    queries = both[0].queries
    assert len(queries) == 2 * len(given[0].queries) == 6
    assert [q.key for q in queries] == ["0", "0-reversed", "1", "1-reversed", "2", "2-reversed"]
    assert queries[0::2] == given[0].queries  # the given order, unchanged
    # each pair's second query: the same reference and target, the captions joined in reverse order
    assert [q.text for q in queries[1::2]] == [
        "Has long sleeves and is red",
        "And plain and is shorter",
        "Is blue and Has a LOGO",
    ]
    for first, second in zip(queries[0::2], queries[1::2], strict=True):
        assert (second.reference, second.target) == (first.reference, first.target)
    # recalls count every query: a pair found at ranks 0 and 20 is one hit of two at R@10
    ranks = np.array([0, 20, 0, 20, 60, 60])
    metrics = task_metrics(both[0], SimpleNamespace(target_rank=ranks))
    numbers = {k: v for k, v in metrics.items() if not isinstance(v, str)}
    assert numbers == pytest.approx({"R@10": 200 / 6, "R@50": 400 / 6, "avg": 50.0, "queries": 6})
    # the protocol each row records beside its numbers
    protocol = {k: v for k, v in metrics.items() if isinstance(v, str)}
    assert protocol == {"caption_template": "{c1} and {c2}", "caption_orders": "both", "reference": "kept"}


def test_fashioniq_given_order_is_the_default_protocol(fashioniq_root):
    tasks = get_benchmark("fashioniq").tasks(fashioniq_config(fashioniq_root))
    assert [(t.name, t.part, len(t.queries)) for t in tasks] == [
        ("fashioniq-dress/val", "dress", 3),
        ("fashioniq-shirt/val", "shirt", 1),
        ("fashioniq-toptee/val", "toptee", 0),
    ]
    assert [q.key for q in tasks[0].queries] == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("options.fashioniq.caption_orders=sideways", "options.fashioniq.caption_orders"),
        ("options.fashioniq.categories=[dress,hat]", "options.fashioniq.categories"),
        ("options.fashioniq.caption_template='{c1} {c3}'", "options.fashioniq.caption_template"),
        ("options.fashioniq.colour=red", "colour"),
        ("options.cirrr.x=1", "options.cirrr"),
        ("options.cirr.categories=[dress]", "categories"),  # CIRR has no options
        ("split=test1", "split"),  # a CIRR split, not a FashionIQ one
        ("memory_gb=0", "memory_gb"),
        ("categories=[dress]", "categories"),  # FashionIQ's options live under options.fashioniq
    ],
)
def test_bad_options_name_their_key(fashioniq_root, override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        fashioniq_config(fashioniq_root, override)


def coir_eval_args(*argv: object) -> argparse.Namespace:
    from coir.eval import cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_every_evalconfig_field_has_a_flag_or_an_override():
    from coir.eval.flags import DEST

    args = coir_eval_args()
    flagged = {
        k[len(DEST) :] for k in vars(args) if k.startswith(DEST) and not k.startswith(DEST + "option_")
    }
    assert flagged == {f.name for f in dataclasses.fields(EvalConfig)} - {"options"}


def test_flags_and_overrides_make_one_typed_config(fashioniq_root):
    from coir.eval.cli import build_config

    args = coir_eval_args(
        "memory_gb=0.5",
        "options.fashioniq.categories=[shirt]",
        "--checkpoint", "ckpt", "--benchmark", "fashioniq", "--data-root", fashioniq_root,
        "--caption-template", "{c2} then {c1}",
        "--no-cache", "--redundancy-k", "1,5", "--mask-reference", "--memory-gb", "0.25",
        "--categories", "dress,shirt", "--caption-orders", "both",
    )  # fmt: skip
    config = build_config(args)
    assert config.memory_gb == 0.25 and config.cache is False and config.redundancy_k == [1, 5]  # flag wins
    assert config.mask_reference is True and config.pictures is True
    assert config.options == {
        "fashioniq": {
            "caption_template": "{c2} then {c1}",
            "categories": ["dress", "shirt"],
            "caption_orders": "both",
        }
    }
    options = get_benchmark("fashioniq").options(config)
    assert (options.categories, options.caption_orders) == (["dress", "shirt"], "both")
    args = coir_eval_args(
        "--checkpoint", "c", "--benchmark", "cirr", "--data-root", "d", "--caption-orders", "both"
    )
    with pytest.raises(ConfigError, match="--caption-orders: an option of fashioniq"):
        build_config(args)
    with pytest.raises(ConfigError, match="memory_gb"):
        build_config(coir_eval_args("memory_gb=lots", "--checkpoint", "c"))
