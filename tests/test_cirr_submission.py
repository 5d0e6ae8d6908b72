"""CIRR server files and soft-label recalls on the REAL CIRR val annotations, from rankings built
here (no images, no model): the writer's files pass the checker, each kind of broken file fails
with the pairid and key named, and softR@k / softRs@k follow the dataset authors' definition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from coir.common.errors import DataFormatError
from coir.eval.benchmarks.cirr import CIRR, cirr_task, write_cirr_submissions
from coir.eval.cirr_submission import read_split_queries, split_queries, validate_submission
from coir.eval.ranking import Ranking
from coir.eval.runner import TaskResult
from coir.eval.tasks import Task
from coir.pipeline.cli import main


def _ranking(task: Task, keys: np.ndarray) -> Ranking:
    """Each query's gallery (reference removed) and img_set subset in increasing keys[i, index] order."""
    n, width = len(task.queries), min(50, len(task.gallery_names) - 1)
    keys = keys.astype(np.float64)
    references = [task.index_of(q.reference) for q in task.queries]
    keys[np.arange(n), references] = np.inf
    order = np.argsort(keys, axis=1, kind="stable")
    top = order[:, :width].astype(np.int64)
    subset = np.full((n, 5), -1, dtype=np.int64)
    target_rank = np.full(n, -1, dtype=np.int64)
    subset_rank = np.full(n, -1, dtype=np.int64)
    for i, q in enumerate(task.queries):
        target = task.index_of(q.target)
        target_rank[i] = int(np.flatnonzero(order[i] == target)[0])
        members = sorted((task.index_of(m) for m in q.subset), key=lambda j: (keys[i, j], j))
        subset[i, : len(members)] = members
        subset_rank[i] = members.index(target) if target in members else -1
    return Ranking(top, np.zeros(top.shape, np.float32), target_rank, subset, subset_rank)


@pytest.fixture(scope="module")
def val(real_data) -> tuple[Task, Path]:
    return cirr_task(real_data / "cirr", "val"), real_data / "cirr"


@pytest.fixture(scope="module")
def hashed(val) -> TaskResult:
    """A deterministic pseudo-random ranking of every val query."""
    task, _ = val
    keys = np.random.default_rng(0).random((len(task.queries), len(task.gallery_names)))
    return TaskResult(task, "hashed", _ranking(task, keys), {})


@pytest.fixture(scope="module")
def written(hashed, tmp_path_factory) -> tuple[Path, Path]:
    return write_cirr_submissions(hashed, tmp_path_factory.mktemp("sub"), "hashed")


@pytest.fixture(scope="module")
def loaded(written) -> tuple[dict, dict]:
    return tuple(json.loads(p.read_text()) for p in written)


def test_real_val_soft_label_counts(real_data, val):
    raw = json.loads((real_data / "cirr" / "captions" / "cap.rc2.val.json").read_text())
    nontrivial = [r for r in raw if r["target_soft"] != {r["target_hard"]: 1.0}]
    assert len(raw) == 4181 and len(nontrivial) == 648
    task, _ = val
    by_key = {q.key: dict(q.soft) for q in task.queries}
    assert all(by_key[str(r["pairid"])] == r["target_soft"] for r in raw)  # the reader keeps every label
    scores = {s for r in raw for s in r["target_soft"].values()}
    assert scores == {1.0, 0.5, 0.2, -1.0}


def test_written_val_files_pass_the_checker_and_match_the_ranking(written, hashed, val):
    task, root = val
    recall_path, subset_path = written
    expected = read_split_queries(root, "val")
    assert validate_submission(recall_path, expected) == ("recall", 4181)
    assert validate_submission(subset_path, expected, "recall_subset") == ("recall_subset", 4181)
    recall = json.loads(recall_path.read_text())
    assert recall["version"] == "rc2" and recall["metric"] == "recall"
    assert [recall[q.key] for q in task.queries] == [hashed.top_names(i) for i in range(4181)]
    subset = json.loads(subset_path.read_text())
    assert [subset[q.key] for q in task.queries] == [hashed.subset_names(i)[:3] for i in range(4181)]
    assert recall_path.stat().st_size < 5_000_000


def _soft_recall(names: list[list[str]], task: Task, k: int) -> float:
    """The CIRPLANT loop: per query the best soft score found in the first k names, starting at 0."""
    total = 0.0
    for q, row in zip(task.queries, names, strict=True):
        best = 0.0
        for name, score in q.soft:
            if name in row[:k]:
                best = max(best, score)
        total += best
    return total / len(task.queries) * 100


@pytest.mark.parametrize("order", ["hashed", "oracle"])
def test_soft_recalls_follow_the_authors_definition(val, hashed, order):
    task, _ = val
    if order == "hashed":
        result = hashed
    else:  # the best soft label first, the -1 ("not a match") labels next: partial credit shows
        keys = np.full((len(task.queries), len(task.gallery_names)), 2.0)
        for i, q in enumerate(task.queries):
            for name, score in q.soft:
                keys[i, task.index_of(name)] = -score
        result = TaskResult(task, "oracle", _ranking(task, keys), {})
    metrics = CIRR().metrics(task, result.ranking)
    tops = [result.top_names(i) for i in range(len(task.queries))]
    subsets = [result.subset_names(i) for i in range(len(task.queries))]
    for k in (1, 5, 10, 50):
        assert metrics[f"softR@{k}"] == pytest.approx(_soft_recall(tops, task, k))
        assert metrics[f"R@{k}"] == pytest.approx(
            100 * np.mean([q.target in t[:k] for q, t in zip(task.queries, tops, strict=True)])
        )
    for k in (1, 2, 3):
        assert metrics[f"softRs@{k}"] == pytest.approx(_soft_recall(subsets, task, k))
    if order == "oracle":
        best = [max([0.0] + [s for n, s in q.soft if n != q.reference]) for q in task.queries]
        assert metrics["softR@1"] == pytest.approx(100 * np.mean(best))
        assert 0 < 100 - metrics["softR@1"] < 5  # 0.5 / 0.2 credits and queries with no label above 0


def _broken(recall: dict, subset: dict, task: Task) -> dict[str, tuple[str, dict, str]]:
    q0, q1 = task.queries[0], task.queries[1]
    outsider = next(g for g in task.gallery_names if g not in q1.subset and g != q1.reference)

    def edit(base: dict, key: str, value) -> dict:
        return {**base, key: value}

    without = {k: v for k, v in recall.items() if k != q0.key}
    return {
        "version": ("recall", edit(recall, "version", "rc1"), "'version'"),
        "no version": ("recall", {k: v for k, v in recall.items() if k != "version"}, "'version'"),
        "metric": ("recall", edit(recall, "metric", "recall@50"), "'metric'"),
        "missing pairid": ("recall", without, q0.key),
        "extra pairid": ("recall", edit(recall, "99999999", recall[q0.key]), "99999999"),
        "int names": ("recall", edit(recall, q0.key, list(range(50))), q0.key),
        "49 names": ("recall", edit(recall, q0.key, recall[q0.key][:49]), q0.key),
        "repeated name": ("recall", edit(recall, q0.key, recall[q0.key][:49] + recall[q0.key][:1]), q0.key),
        "reference": ("recall", edit(recall, q0.key, [q0.reference] + recall[q0.key][:49]), q0.key),
        "not in gallery": ("recall", edit(recall, q0.key, recall[q0.key][:49] + ["test1-0-0-img0"]), q0.key),
        "subset outsider": ("recall_subset", edit(subset, q1.key, subset[q1.key][:2] + [outsider]), q1.key),
        "subset reference": (
            "recall_subset",
            edit(subset, q1.key, subset[q1.key][:2] + [q1.reference]),
            q1.key,
        ),
        "subset 2 names": ("recall_subset", edit(subset, q1.key, subset[q1.key][:2]), q1.key),
        "subset top 50": ("recall_subset", edit(subset, q1.key, recall[q1.key]), q1.key),
    }


CASES = [
    *("version", "no version", "metric", "missing pairid", "extra pairid", "int names", "49 names"),
    *("repeated name", "reference", "not in gallery", "subset outsider", "subset reference"),
    *("subset 2 names", "subset top 50"),
]


@pytest.mark.parametrize("case", CASES)
def test_each_breakage_is_named(loaded, val, tmp_path, case):
    task, _ = val
    recall, subset = loaded
    metric, data, named = _broken(recall, subset, task)[case]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataFormatError) as error:
        validate_submission(path, split_queries(task), metric if case != "metric" else None)
    assert named in str(error.value) and str(path) in str(error.value)


def test_repeated_pairid_key_and_oversize_file(written, val, tmp_path):
    task, _ = val
    text = written[0].read_text()
    key = task.queries[3].key
    repeated = tmp_path / "repeated.json"
    repeated.write_text(text[:-1] + f', "{key}": ' + json.dumps(json.loads(text)[key]) + "}")
    with pytest.raises(DataFormatError, match=f"'{key}' appears twice"):
        validate_submission(repeated, split_queries(task))
    big = tmp_path / "big.json"
    big.write_text(text[:-1] + " " * 5_000_000 + "}")
    with pytest.raises(DataFormatError, match="at most 5000000"):
        validate_submission(big, split_queries(task))


def test_the_writer_refuses_a_file_the_checker_rejects(hashed, tmp_path, monkeypatch):
    from coir.eval.benchmarks import cirr

    real = cirr.cirr_submissions

    def drop_one(result):
        recall, subset = real(result)
        recall.pop(result.task.queries[-1].key)
        return recall, subset

    monkeypatch.setattr(cirr, "cirr_submissions", drop_one)
    with pytest.raises(DataFormatError, match=hashed.task.queries[-1].key):
        write_cirr_submissions(hashed, tmp_path, "hashed")


def test_cli_validate(written, val, tmp_path, capsys):
    _, root = val
    where = ["--split", "val", "--data-root", str(root)]
    assert main(["eval", "validate", *map(str, written), *where]) == 0
    assert capsys.readouterr().out.count("ok: ") == 2
    code = main(["eval", "validate", str(written[0]), *where, "--metric", "recall_subset"])
    assert code == 2 and "'metric'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "validate " in capsys.readouterr().out  # `coir eval` still parses as before and lists it


def test_soft_recall_by_hand():
    from coir.eval.metrics import soft_recall_at_k

    ranked = np.array([[0, 1, 2], [5, 4, -1]])
    relevance = np.array([[-1.0, 0.5, 1.0], [0.0, 0.2, 1.0]])  # the padded slot's 1.0 must not count
    got = soft_recall_at_k(ranked, relevance, (1, 2, 3, 50))
    assert got == pytest.approx({"softR@1": 0.0, "softR@2": 35.0, "softR@3": 60.0, "softR@50": 60.0})


def test_cli_score_gives_the_metrics_of_the_ranking_the_files_came_from(written, hashed, val, capsys):
    _, root = val
    where = ["--benchmark", "cirr", "--split", "val", "--data-root", str(root)]
    assert main(["eval", "score", *where, *map(str, reversed(written)), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = CIRR().metrics(hashed.task, hashed.ranking)  # what coir's evaluation reported
    assert set(got) == set(expected) | {"queries"} and got["queries"] == 4181
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert 0 < got["R@50"] < 100 and 0 < got["softRs@3"] < 100
    assert main(["eval", "score", *where, str(written[0])]) == 2
    assert "no 'recall_subset' file" in capsys.readouterr().err
