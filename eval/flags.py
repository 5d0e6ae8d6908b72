"""The evaluation flags of `coir eval` and `coir launch eval`, derived from the schemas.

Every EvalConfig field with a help text becomes a flag (`batch_size` -> --batch-size; a bool that
defaults to False -> --flag, to True -> --no-flag; a list -> comma-separated values), and so does
every field of a registered benchmark's Options (`caption_orders` -> --caption-orders, setting
options.<benchmark>.caption_orders of each evaluated benchmark that has it). Settings merge as:
EvalConfig defaults < --config YAML < `key=value` overrides < flags; the result is type-checked by
the same schema, so a flag and an override of the same key behave alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from coir.common.errors import ConfigError

if TYPE_CHECKING:
    from coir.eval.config import EvalConfig

DEST = "eval_"  # argparse dest prefix of the EvalConfig flags
OPTION_DEST = "eval_option_"  # ... and of the benchmark options flags


def _scalar(annotation: Any) -> tuple[type | None, bool]:
    """(the scalar type, whether a list of it) of a field annotation; (None, False) for dicts."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar(args[0]) if len(args) == 1 else (None, False)
    if origin is list:
        inner, _ = _scalar(typing.get_args(annotation)[0])
        return inner, True
    if annotation in (str, int, float, bool):
        return annotation, False
    return None, False


def _comma_list(kind: type, flag: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            return [kind(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag}: expected {kind.__name__} values separated by commas, got {text!r}"
            ) from None

    return parse


def _add_flag(parser: Any, f: dataclasses.Field, annotation: Any, dest: str, suffix: str = "") -> None:
    kind, many = _scalar(annotation)
    if kind is None:
        return  # dicts: `key.sub=value` overrides only
    name = "--" + f.name.replace("_", "-")
    text = f.metadata["help"] + suffix
    if kind is bool:
        if f.default is True:  # the help text says what the field turns on: a verb first
            negated = "do not " + text[0].lower() + text[1:]
            parser.add_argument(
                "--no-" + name[2:], dest=dest, action="store_false", default=None, help=negated
            )
        else:
            parser.add_argument(name, dest=dest, action="store_true", default=None, help=text)
        return
    extra: dict[str, Any] = {}
    choices = f.metadata.get("choices")
    if choices is not None:
        extra["choices"] = list(choices() if callable(choices) else choices)
    else:
        extra["metavar"] = f.metadata.get("metavar", f.name.upper()) + (",..." if many else "")
    kind_of = _comma_list(kind, name) if many else kind
    parser.add_argument(name, dest=dest, type=kind_of, default=None, help=text, **extra)


def _benchmark_options(
    benchmarks: Sequence[str] | None = None,
) -> dict[str, tuple[dataclasses.Field, Any, list[str]]]:
    """Option field name -> (a field, its annotation, the benchmarks that have it), of `benchmarks`
    (default: every registered one)."""
    from coir.eval.benchmarks import benchmark_names, get_benchmark

    found: dict[str, tuple[dataclasses.Field, Any, list[str]]] = {}
    for name in benchmark_names() if benchmarks is None else benchmarks:
        schema = get_benchmark(name).Options
        hints = typing.get_type_hints(schema)
        for f in dataclasses.fields(schema):
            if f.name in found:
                found[f.name][2].append(name)
            else:
                found[f.name] = (f, hints[f.name], [name])
    return found


def add_eval_arguments(
    parser: argparse.ArgumentParser, exclude: Sequence[str] = (), benchmarks: Sequence[str] | None = None
) -> None:
    """--config, `key=value` overrides, a flag per EvalConfig field (but `exclude`) and per option of
    `benchmarks` (default: every registered one)."""
    from coir.eval.config import EvalConfig

    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. batch_size=64"
    )
    parser.add_argument("--config", help="YAML evaluation config (configs/zeroshot/*.yaml)")
    hints = typing.get_type_hints(EvalConfig)
    for f in dataclasses.fields(EvalConfig):
        if f.name not in exclude and "help" in f.metadata:
            _add_flag(parser, f, hints[f.name], DEST + f.name)
    group = parser.add_argument_group("benchmark options (also options.<benchmark>.<key>=VALUE)")
    own = {f.name for f in dataclasses.fields(EvalConfig)}
    for key, (f, annotation, owners) in _benchmark_options(benchmarks).items():
        if key in own:
            raise ConfigError(f"option {key!r} of {', '.join(owners)} has the name of an EvalConfig key")
        _add_flag(group, f, annotation, OPTION_DEST + key, f" [{', '.join(owners)}]")


def eval_config_from_args(args: argparse.Namespace, benchmarks: Sequence[str] | None = None) -> EvalConfig:
    """The EvalConfig of parsed arguments (not yet checked: check_eval_config). A benchmark option
    flag goes to each of `benchmarks` (default: the config's benchmark) that has the option."""
    from coir.common.config import load_config, to_dict
    from coir.eval.config import EvalConfig

    config = load_config(EvalConfig, args.config, list(args.overrides))
    values = to_dict(config)
    for f in dataclasses.fields(EvalConfig):
        given = getattr(args, DEST + f.name, None)
        if given is not None:
            values[f.name] = given
    options = {k[len(OPTION_DEST) :]: v for k, v in vars(args).items() if k.startswith(OPTION_DEST)}
    options = {k: v for k, v in options.items() if v is not None}
    if options:
        chosen = list(benchmarks) if benchmarks else [b for b in [values["benchmark"]] if b]
        known = _benchmark_options()
        for key, value in options.items():
            owners = [b for b in chosen if b in known[key][2]]
            if not owners:
                flag = "--" + key.replace("_", "-")
                raise ConfigError(
                    f"{flag}: an option of {', '.join(known[key][2])}, "
                    f"not of the benchmark evaluated ({', '.join(chosen) or 'none given'})"
                )
            for benchmark in owners:
                values["options"].setdefault(benchmark, {})[key] = value
    return load_config(EvalConfig, base=values)
