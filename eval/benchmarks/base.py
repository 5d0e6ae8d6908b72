"""What a benchmark is to the rest of coir, and the registry of them.

A benchmark module (one file in this package) subclasses Benchmark and decorates it with @register;
the registry imports every module of the package the first time it is asked, so adding a benchmark
is adding its file. Generic code (evaluate, the runner, the validator, `coir launch eval`) asks the
registry and never branches on a benchmark's name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from coir.common.config import load_config
from coir.common.errors import ConfigError
from coir.eval.metrics import recall_at_k
from coir.eval.tasks import Query, Task

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig
    from coir.eval.ranking import Ranking
    from coir.eval.runner import TaskResult


@dataclass
class NoOptions:
    """The options of a benchmark that has none: any `options.<name>.<key>` is an error."""


class Benchmark:
    """One benchmark: its files -> Tasks, its metrics and headline row, the model-selection measure,
    its submission files and its redundancy truth files.

    Subclasses set `name`, `splits` and (when they have options of their own) `Options`, a dataclass
    whose fields carry `coir.eval.config.option(...)` help texts (they become flags too), and
    implement `tasks` and `main_measure`.
    """

    name: ClassVar[str]
    splits: ClassVar[tuple[str, ...]]
    Options: ClassVar[type] = NoOptions
    # splits whose only result is the server files: `coir eval` writes them even without --out
    submission_splits: ClassVar[tuple[str, ...]] = ()
    # the metrics the zero-shot report (`coir eval zeroshot`, its val split) shows for each task and
    # the summary row; empty: the benchmark is not in that report
    report_metrics: ClassVar[tuple[str, ...]] = ()

    def options(self, config: EvalConfig) -> Any:
        """config.options[name] as a typed Options instance (ConfigError naming the key)."""
        section = config.options.get(self.name) or {}
        try:
            return load_config(self.Options, base=dict(section))
        except ConfigError as error:
            raise ConfigError(f"options.{self.name}: {error}") from error

    def check(self, config: EvalConfig) -> None:
        """The split and the options; subclasses add their own checks (calling this one)."""
        if config.split not in self.splits:
            raise ConfigError(
                f"key 'split': {self.name} has the splits {', '.join(self.splits)}, got {config.split!r}"
            )
        self.options(config)

    def tasks(self, config: EvalConfig) -> list[Task]:
        """The galleries and queries of config.split under config.data_root (one task, or one per part)."""
        raise NotImplementedError

    def metrics(self, task: Task, ranking: Ranking) -> dict[str, float]:
        """The task's metrics (called only when its queries have targets): R@k by default."""
        return recall_at_k(ranking.target_rank, task.ks)

    def headline(self, split: str) -> str:
        """The results.json row model selection reads: the task's own, or the summary row."""
        return f"{self.name}/{split}"

    def summary(self, per_task: Sequence[Mapping[str, float | str]]) -> dict[str, float | str] | None:
        """A row over the tasks (e.g. their mean), stored under headline(split); None: no such row."""
        return None

    def main_measure(self, metrics: Mapping[str, float]) -> float:
        """The number model selection maximises, from the headline row's metrics."""
        raise NotImplementedError

    def write_submissions(self, result: TaskResult, out_dir: Path) -> list[Path]:
        """Files for an evaluation server, written under out_dir; none by default."""
        return []

    def validate_files(
        self, files: Sequence[str | Path], data_root: str | Path, split: str, metric: str | None = None
    ) -> list[str]:
        """Check evaluation-server files of `split` against its annotations (`coir eval validate`);
        a line per file. `metric`: the kind each file must be, for a benchmark with several."""
        raise ConfigError(f"{self.name} has no evaluation-server files to validate")

    def score_files(self, files: Sequence[str | Path], data_root: str | Path, split: str) -> dict[str, float]:
        """The metrics of prediction files in the server's format on a labelled split, computed by the
        code of coir's own evaluation (`coir eval score`); "queries" the number scored."""
        raise ConfigError(f"{self.name} has no prediction-file format to score")

    def truth_file(self, task: Task) -> str:
        """Name of the synthetic world's redundancy truth file for this task (under W/truth/)."""
        return f"{self.name}_redundancy_{task.split}.json"

    def truth_key(self, query: Query) -> str:
        """The key of a query in the truth file: its own key by default."""
        return query.key


_REGISTRY: dict[str, Benchmark] = {}
_discovered = False
B = TypeVar("B", bound=type[Benchmark])


def register(cls: B) -> B:
    """Class decorator: add one instance of a Benchmark subclass to the registry, under cls.name."""
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(
            f"benchmark {cls.name!r} is registered twice ({type(_REGISTRY[cls.name])} and {cls})"
        )
    _REGISTRY[cls.name] = cls()
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    package = importlib.import_module("coir.eval.benchmarks")
    for module in pkgutil.iter_modules(package.__path__):
        if module.name != "base" and not module.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{module.name}")
    _discovered = True


def benchmark_names() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark `name`; ConfigError listing the registered ones otherwise."""
    _discover()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown benchmark {name!r} (registered: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]
