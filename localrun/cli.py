"""The ``ml-connector`` command."""

from __future__ import annotations

import argparse
import sys

from localrun import demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-connector", description="Visma.net ERP -> Marketo Engage connector")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run two sync cycles against local sandboxes and verify Marketo", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        return demo.main(rest)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
