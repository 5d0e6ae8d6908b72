"""coir.eval — zero-shot and finetuned evaluation on CIRR, FashionIQ and LaSCo.

tasks       benchmark files -> Task (gallery names/paths, queries, removed and subset names)
encode      batched embedding, the on-disk gallery cache, several ranks (gather)
ranking     chunked top-k and exact target ranks (tie rule: higher score, then lower index)
metrics     R@K, Rs@K, the CIRR average, FashionIQ means, the model-selection measure
runner      one model on one task -> TaskResult
submission  the CIRR evaluation-server files
redundancy  image-only / text-only analysis, agreement with synthetic truth labels
report      results.json (merged), markdown tables, retrieval PNG, HTML page
api         evaluate(), evaluate_detailed(), write_results() — the library entry points
validation  per-epoch validators for the trainer (entry points "coir.validators")
config/cli  `coir eval` and its EvalConfig (configs/zeroshot/*.yaml)
"""
