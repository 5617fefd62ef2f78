"""`tabserve train|serve|score|promote`: one command for the entry points, as `mlflow models
serve` and `bentoml serve` are used. Each subcommand takes exactly the options of its module:
`python -m training`, `python -m app`, `python -m app.score` and `python -m app.promote`."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

_COMMANDS = {
    "train": ("training.cli", "train a model on a CSV or Parquet file and publish a bundle"),
    "serve": ("app.__main__", "serve the bundles under MODEL_DIR over HTTP"),
    "score": ("app.score", "score a CSV or Parquet file offline with a bundle"),
    "promote": ("app.promote", "publish a copy of an existing version as the next version"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage(), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in _COMMANDS:
        print(f"tabserve: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name = _COMMANDS[command][0]
    try:
        # Imported by name and only when asked: serving never imports training, and the slim
        # image, which has no TensorFlow or pandas, can still serve.
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(
            f"tabserve {command}: needs a package that is not installed ({exc.name}); "
            "install the project with the `train` extra",
            file=sys.stderr,
        )
        return 2
    entry: Callable[[Sequence[str] | None], int] = module.main
    return entry([*rest])


def _usage() -> str:
    lines = ["usage: tabserve {train,serve,score,promote} [options]", ""]
    lines += [f"  {name:<7} {help_}" for name, (_, help_) in _COMMANDS.items()]
    lines += ["", "`tabserve COMMAND --help` lists a command's options."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
