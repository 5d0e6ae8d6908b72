"""The `coir` command line: a tree of subcommands discovered from entry points.

Each subcommand is a module registered under the `coir.commands` entry-point group in
pyproject.toml, named by its words joined with dots (`data.synth` is `coir data synth`).
A command module defines:

    HELP: str                      one line, shown in the parent's listing
    EXAMPLE: str                   shown at the end of the command's --help
    add_arguments(parser) -> None
    run(args) -> int               the exit code

A command may also sit under another command (`eval.validate` under `eval`): `coir eval validate …`
runs it, any other `coir eval …` runs `eval`, whose --help lists it.

Heavy imports (torch, deepspeed …) belong inside run(), so `coir --help` stays fast. Keeping the
registry in entry points lets coir.datasets, coir.eval and coir.launch add commands without
coir.pipeline importing them (imports go one way: datasets <- pipeline <- eval <- launch).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points
from types import ModuleType

from coir.common.errors import CoirError

GROUP = "coir.commands"


def _registered() -> dict[tuple[str, ...], str]:
    return {tuple(ep.name.split(".")): ep.value for ep in entry_points(group=GROUP)}


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=36)


def _epilog(module: ModuleType, children: dict[str, str]) -> str | None:
    example = getattr(module, "EXAMPLE", "").strip("\n")
    parts = ["example:\n" + "\n".join("  " + line for line in example.splitlines())] if example else []
    if children:
        lines = [
            f"  {name:<12} {getattr(importlib.import_module(t), 'HELP', '')}" for name, t in children.items()
        ]
        parts.append("commands (coir … COMMAND --help):\n" + "\n".join(lines))
    return "\n\n".join(parts) or None


def _under_leaf(words: tuple[str, ...], registered: dict[tuple[str, ...], str]) -> bool:
    return any(words[:depth] in registered for depth in range(1, len(words)))


def _attach(
    parent: argparse._SubParsersAction, name: str, module: ModuleType, children: dict[str, str]
) -> None:
    help_line = getattr(module, "HELP", "")
    parser = parent.add_parser(
        name,
        help=help_line,
        description=help_line,
        epilog=_epilog(module, children),
        formatter_class=_formatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(_command=module)


def _standalone_parser(words: tuple[str, ...], module: ModuleType) -> argparse.ArgumentParser:
    help_line = getattr(module, "HELP", "")
    parser = argparse.ArgumentParser(
        prog="coir " + " ".join(words),
        description=help_line,
        epilog=_epilog(module, {}),
        formatter_class=_formatter,
    )
    module.add_arguments(parser)
    parser.set_defaults(_command=module)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coir",
        description="Composed image retrieval: data, training, evaluation and launching.",
        epilog="example:\n  coir data synth --out runs/world --scale tiny\n  coir demo",
        formatter_class=_formatter,
    )
    groups: dict[tuple[str, ...], argparse._SubParsersAction] = {}
    root = parser.add_subparsers(title="commands", metavar="COMMAND")
    groups[()] = root
    registered = _registered()
    for words, target in sorted(registered.items()):
        if _under_leaf(words, registered):
            continue  # parsed on its own by main()
        for depth in range(1, len(words)):
            prefix = words[:depth]
            if prefix not in groups:
                group_parser = groups[prefix[:-1]].add_parser(
                    prefix[-1], help=f"{' '.join(prefix)} commands", formatter_class=_formatter
                )
                groups[prefix] = group_parser.add_subparsers(title="commands", metavar="COMMAND")
        children = {w[-1]: t for w, t in registered.items() if w[:-1] == words}
        _attach(groups[words[:-1]], words[-1], importlib.import_module(target), children)
    return parser


def _parser_for(argv: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """(the parser, the arguments left for it): a command under another command when argv names one."""
    registered = _registered()
    for depth in range(len(argv), 1, -1):
        words = tuple(argv[:depth])
        if words in registered and _under_leaf(words, registered):
            return _standalone_parser(words, importlib.import_module(registered[words])), argv[depth:]
    return build_parser(), argv


def main(argv: list[str] | None = None) -> int:
    parser, rest = _parser_for(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(rest)
    command = getattr(args, "_command", None)
    if command is None:
        parser.print_help()
        return 2
    try:
        return int(command.run(args) or 0)
    except CoirError as error:
        print(f"coir: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("coir: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
