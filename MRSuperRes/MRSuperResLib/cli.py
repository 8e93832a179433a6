"""`mrsuperres` command line: a dispatcher; each subcommand lives in its own cli_<name>.py module."""

import argparse
import importlib
import sys

# Subcommand name -> module defining add_arguments(parser) and run(args) -> int.
SUBCOMMANDS = {
    "enhance": "MRSuperResLib.cli_enhance",
    "demo": "MRSuperResLib.cli_demo",
    "simulate": "MRSuperResLib.cli_simulate",
    "evaluate": "MRSuperResLib.cli_evaluate",
    "train": "MRSuperResLib.cli_train",
    "fetch-data": "MRSuperResLib.cli_fetch_data",
}


def build_parser():
    parser = argparse.ArgumentParser(prog="mrsuperres", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=module.__doc__.strip().splitlines()[0])
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("mrsuperres: cancelled", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as error:
        print(f"mrsuperres {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
