"""``python -m userstudy <command>``: one entry point for the package's commands.

    python -m userstudy simulate --methods a,b,c --out rankings.csv
    python -m userstudy analyze rankings.csv --out results/
    python -m userstudy make-study --out study/ --method a=gen/a --method b=gen/b
    python -m userstudy serve --study study/
    python -m userstudy --version

Each command is defined once, by the ``build_parser`` and ``main`` of its module
(``cli.COMMANDS``); ``python -m userstudy.<module>`` runs the same ``main``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from userstudy import cli


def build_parser() -> argparse.ArgumentParser:
    """The top level only: the commands' names and summaries, ``--help`` and ``--version``."""
    parser = cli.ArgumentParser(prog="python -m userstudy",
                                     description="Ranking studies of generated videos: simulate, analyze, "
                                                 "make a study folder, serve the ranking page.",
                                     epilog="Run python -m userstudy COMMAND --help for a command's options.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {cli.version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, spec in cli.COMMANDS.items():
        commands.add_parser(name, help=spec.summary, add_help=False)
    return parser


@cli.interruptible
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in cli.COMMANDS:
        name = argv[0]
        # Imported here, for the chosen command only. Measured with python -X importtime: importing
        # userstudy.analyze takes 2.1 s and userstudy.simulate 1.8 s (pandas, scipy.stats, matplotlib),
        # userstudy.serve 0.14 s and userstudy.make_study 0.08 s (standard library): importing all four
        # up front would make serve, make-study and --help wait 2 s for modules they never use.
        module = importlib.import_module(cli.COMMANDS[name].module)
        return module.main(argv[1:], prog=f"python -m userstudy {name}")
    build_parser().parse_args(argv)  # --help, --version, or an error naming the commands: all exit
    return 2


if __name__ == "__main__":
    sys.exit(main())
