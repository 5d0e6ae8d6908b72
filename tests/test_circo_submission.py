"""CIRCO server files for 800 test-format queries (built from the REAL val records, tests/circo_fixture.py)
over a gallery of 4,000 ids, from a ranking built here (no images, no model): the writer's file passes
`coir eval validate --benchmark circo`, and each kind of broken file is refused with its reason."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from circo_fixture import TEST_QUERIES, circo_root

from coir.eval import validate_cli
from coir.eval.benchmarks.circo import circo_task, write_circo_submission
from coir.eval.ranking import Ranking
from coir.eval.runner import TaskResult


@pytest.fixture(scope="module")
def root(real_data, tmp_path_factory) -> Path:
    return circo_root(real_data, tmp_path_factory.mktemp("circo"), extra_images=3000)


@pytest.fixture(scope="module")
def written(root, tmp_path_factory) -> Path:
    """The file coir writes for a pseudo-random ranking of every test query (reference removed)."""
    task = circo_task(root, "test")
    rng = np.random.default_rng(0)
    top = np.empty((len(task.queries), 50), dtype=np.int64)
    for i, query in enumerate(task.queries):
        order = rng.permutation(len(task.gallery_names))
        top[i] = order[order != task.index_of(query.reference)][:50]
    n = len(task.queries)
    empty = np.zeros((n, 0), dtype=np.int64)
    ranking = Ranking(top, np.zeros(top.shape, np.float32), np.full(n, -1), empty, np.full(n, -1))
    return write_circo_submission(
        TaskResult(task, "hashed", ranking, {}), tmp_path_factory.mktemp("sub"), "hashed"
    )


def validate(*argv: object) -> int:
    parser = argparse.ArgumentParser()
    validate_cli.add_arguments(parser)
    return validate_cli.run(parser.parse_args([str(a) for a in argv]))


def test_the_written_test_file_has_every_query_once_with_50_gallery_ids(written, root, capsys):
    data = json.loads(written.read_text())
    assert written.name == "circo-test-hashed.json"
    assert list(data) == [str(i) for i in range(TEST_QUERIES)]
    info = root / "COCO2017_unlabeled" / "annotations" / "image_info_unlabeled2017.json"
    gallery = {im["id"] for im in json.loads(info.read_text())["images"]}
    test = json.loads((root / "annotations" / "test.json").read_text())
    for q in test:
        ids = data[str(q["id"])]
        assert len(ids) == 50 and len(set(ids)) == 50 and set(ids) <= gallery
        assert all(isinstance(i, int) for i in ids) and q["reference_img_id"] not in ids
    assert validate(written, "--benchmark", "circo", "--data-root", root) == 0  # split: test by default
    assert capsys.readouterr().out.strip() == f"ok: {written}: 800 queries of CIRCO test, 50 gallery ids each"


def _broken(written: Path, tmp_path: Path, edit) -> Path:
    data = json.loads(written.read_text())
    text = edit(data)
    path = tmp_path / "broken.json"
    path.write_text(text if isinstance(text, str) else json.dumps(data))
    return path


def _duplicate_key(data: dict) -> str:
    return json.dumps(data)[:-1] + ', "5": ' + json.dumps(data["5"]) + "}"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d.pop("799"), "1 queries of the split are missing: 799"),
        (lambda d: d["12"].__setitem__(3, d["12"][0]), "query 12: image .* appears twice"),
        (lambda d: d["40"].__setitem__(49, 999_999), "query 40: image 999999 is not in the gallery"),
        (lambda d: d["7"].pop(), "query 7: 49 image ids, expected 50"),
        (lambda d: d.__setitem__("800", d["0"]), "'800' is not a query id of the split"),
        (lambda d: d["3"].__setitem__(0, "12a"), "query 3: item 0: '12a' is not an image id"),
        (_duplicate_key, "key '5' appears twice"),
    ],
)
def test_a_broken_file_is_refused_with_its_reason(written, root, tmp_path, edit, reason):
    from coir.common.errors import CoirError

    path = _broken(written, tmp_path, edit)
    with pytest.raises(CoirError, match=reason):
        validate(path, "--benchmark", "circo", "--split", "test", "--data-root", root)


def test_ids_written_as_strings_are_the_same_images(written, root, tmp_path, capsys):
    """SEARLE writes its ids as strings; the check and the scores treat them as the integers."""
    data = {key: [str(i) for i in ids] for key, ids in json.loads(written.read_text()).items()}
    path = tmp_path / "strings.json"
    path.write_text(json.dumps(data))
    assert validate(path, "--benchmark", "circo", "--data-root", root) == 0
    from coir.eval.circo_submission import read_split_expectation, validate_predictions

    expected = read_split_expectation(root, "test")
    assert validate_predictions(path, expected) == validate_predictions(written, expected)


def test_no_metric_kind_no_test_scores_no_foreign_split(written, root):
    from coir.common.errors import ConfigError
    from coir.eval.benchmarks import get_benchmark

    with pytest.raises(ConfigError, match="--metric"):
        validate(written, "--benchmark", "circo", "--data-root", root, "--metric", "recall")
    with pytest.raises(ConfigError, match="no ground truths"):
        get_benchmark("circo").score_files([written], root, "test")
    with pytest.raises(ConfigError, match="splits val, test"):
        validate(written, "--benchmark", "circo", "--split", "test1", "--data-root", root)
