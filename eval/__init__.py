"""coir.eval — zero-shot and finetuned evaluation on the registered benchmarks (CIRR, CIRCO, FashionIQ,
LaSCo …).

benchmarks/ one module per benchmark (its tasks, metrics, headline row, model-selection measure,
            submission files, redundancy truth, splits and options), registered once (base.py)
tasks       Query and Task: a benchmark-neutral gallery and query list
encode      batched embedding, the on-disk gallery cache, several ranks (gather)
ranks       eval_ranks(config): join the process group (the trainer's set-up) when run with several ranks
ranking     chunked top-k and exact target ranks (tie rule: higher score, then lower index)
metrics     R@K and means over tasks
runner      one model on one task -> TaskResult
redundancy  image-only / text-only analysis, agreement with synthetic truth labels
report      results.json (merged), markdown tables, retrieval PNG, HTML page
api         evaluate(model, EvalConfig) -> Evaluation, write_results() — the library entry points
validation  the trainer's per-epoch validator for any benchmark (entry point "coir.validation")
config      EvalConfig, the one typed options object (configs/zeroshot/*.yaml)
flags/cli   `coir eval`; its flags (shared with `coir launch eval`) derived from EvalConfig
gallery_index  `coir index` (index_cli): a gallery embedded by a trained model, resumable
retriever   Retriever: search an index with an image and a text (`coir search`, search_cli)
zeroshot    the zero-shot report: a checkpoint and its baselines on CIRR, CIRCO, FashionIQ val, one
            gallery embedding per task (zeroshot_report: table, results, pictures; `coir eval zeroshot`)

`coir` itself is a namespace package (no __init__.py, see pyproject.toml), so the retriever is
`coir.eval.Retriever`, imported on first use so that `import coir.eval` stays light.
"""

from typing import Any

__all__ = ["Retriever"]


def __getattr__(name: str) -> Any:
    if name == "Retriever":
        from coir.eval.retriever import Retriever

        return Retriever
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
