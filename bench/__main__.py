"""``imac-bench`` and ``python -m bench``: the benchmark's command line (bench.cli), imported behind the
Ctrl-C guard of ``metrics.entry_point``."""

import sys

from metrics.entry_point import run_entry_point


def main(argv: list[str] | None = None) -> int:
    return run_entry_point("bench.cli", "imac-bench", argv)


if __name__ == "__main__":
    sys.exit(main())
