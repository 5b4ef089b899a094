"""Messages and progress for every command: logging set up once by main(), -q/-v everywhere, results on
stdout, messages on stderr, UserError as `error: ...` and exit 2 (docs/WORKDIR.md, "Errors")."""
from __future__ import annotations

import argparse
import functools
import logging
import sys
import warnings
from typing import Callable

PACKAGE = "competition"


class _Stderr(logging.StreamHandler):
    """Writes to the current sys.stderr (which tests and tools may swap after set-up)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (ours and libraries') as one log line each, without the source line."""
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, message)


def add_log_arguments(ap: argparse.ArgumentParser) -> None:
    g = ap.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors, no progress bars")
    g.add_argument("-v", "--verbose", action="store_true", help="debug messages too")


def parse_and_log(ap: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The end of every command's argument set-up: add -q/-v, parse `argv`, set up logging."""
    add_log_arguments(ap)
    args = ap.parse_args(argv)
    setup_logging(args)
    return args


def setup_logging(args: argparse.Namespace | None = None, *, quiet: bool = False, verbose: bool = False) -> None:
    """Send the package's messages and Python warnings (one line each) to stderr at the level the flags
    ask for (default INFO). Safe to call again: the handler is replaced, not added twice."""
    quiet = quiet or bool(getattr(args, "quiet", False))
    verbose = verbose or bool(getattr(args, "verbose", False))
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s" if verbose
                                           else "%(levelname)s: %(message)s"))
    handler.set_name(PACKAGE)
    warnings.showwarning = _log_warning
    for name in (PACKAGE, "__main__", "py.warnings"):  # __main__: the module run by `python -m`
        logger = logging.getLogger(name)
        logger.handlers = [h for h in logger.handlers if h.get_name() != PACKAGE] + [handler]
        logger.setLevel(level)
        logger.propagate = False  # one line per message, even when a library configures the root logger


class UserError(Exception):
    """An error the user can act on, saying what and where (DataError, FoldsError, ConfigError, ... subclass it)."""


def command(main: Callable[..., int | None]) -> Callable[..., int]:
    """Decorator of every command's main(): a UserError prints `error: ...` and returns 2 (a traceback under -v)."""
    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs) or 0
        except UserError as exc:
            if logging.getLogger(PACKAGE).getEffectiveLevel() <= logging.DEBUG:
                raise
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return run


def progress_disabled(progress: bool = True) -> bool | None:
    """tqdm's `disable`: None shows a bar on a terminal only (never in a log file or CI); True hides it."""
    return None if progress and logging.getLogger(PACKAGE).getEffectiveLevel() <= logging.INFO else True
