"""What every command-line entry point shares: flag parsing and argument errors as one line, exit code 2."""

from __future__ import annotations

import sys


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parser for ``app.run(..., flags_parser=parse_flags)``: a bad flag prints one line
    (``error: ...``) and exits with code 2."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        exit_with_error(str(error))


def refuse_positional(argv: list[str]) -> None:
    """Exits with code 2 if ``argv`` (as ``app.run`` passes it) holds positional arguments."""
    if len(argv) > 1:
        exit_with_error(f"unexpected arguments {argv[1:]}")


def exit_with_error(message: str) -> None:
    """Prints the first line of ``message`` as ``error: ...`` to stderr and exits with code 2."""
    print(f"error: {message}".splitlines()[0], file=sys.stderr)
    sys.exit(2)
