"""Entry point: parses the command line and hands over to one command module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from grantline import __version__
from grantline.cli import actions, audit, dev, exit_codes, mcp, policy, reconcile, request, serve
from grantline.domain.errors import (
    ConfigError,
    DependencyUnavailableError,
    GrantlineError,
    IntegrityError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grantline",
        description="Just-in-time access broker for non-human identities.",
        epilog="exit codes: 0 ok, 1 denied, failed tests or reconciler findings, "
        "2 integrity failure, 3 dependency unavailable, 4 usage or configuration error",
    )
    parser.add_argument("--version", action="version", version=f"grantline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (serve, dev, request, actions, reconcile, audit, policy, mcp):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except DependencyUnavailableError as exc:
        print(f"grantline: {exc.message}", file=sys.stderr)
        return exit_codes.UNAVAILABLE
    except IntegrityError as exc:
        print(f"grantline: {exc.message}", file=sys.stderr)
        return exit_codes.INTEGRITY
    except (ConfigError, GrantlineError) as exc:
        print(f"grantline: {exc.message}", file=sys.stderr)
        return exit_codes.USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
