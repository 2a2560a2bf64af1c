"""``imac`` and ``python -m imac``: the reference model's command line (imac.cli), imported behind the
Ctrl-C guard of ``metrics.entry_point``."""

import sys

from metrics.entry_point import run_entry_point


def main(argv: list[str] | None = None) -> int:
    return run_entry_point("imac.cli", "imac", argv)


if __name__ == "__main__":
    sys.exit(main())
