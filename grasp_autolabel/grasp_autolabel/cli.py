"""The ``grasp-autolabel`` command.

Sub-commands are declared here (arguments only) and their implementations imported when they
run, so ``grasp-autolabel --help`` is instant and commands that need no detector never import
torch.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from grasp_autolabel import __version__

PROG = "grasp-autolabel"


class CommandError(Exception):
    """An error the user can act on: printed as one line, without a traceback."""


def _add_info(sub):
    p = sub.add_parser("info", help="show versions and what is available here (ROS 2, messages, torch)",
                       description="Report the package version and which optional parts work in this "
                                   "environment: rclpy and the grasp_autolabel_msgs messages (nodes), "
                                   "rosbags (bag export), torch/torchvision (detector).")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(_impl="grasp_autolabel.info:main")


# Each entry adds one sub-command's parser.
_COMMANDS = [_add_info]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Automatic oriented-grasp labels from sequential RGB-D frames of a log pile. "
                    "Grasps are (x, y, theta, w, h) in image pixels: theta is the closing direction "
                    "from +x towards +y in [-pi/2, pi/2), w the opening, h the jaw size.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show full tracebacks on errors (also: GRASP_AUTOLABEL_DEBUG=1)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "_impl"):
        parser.print_help()
        return 2
    module_name, func_name = args._impl.split(":")
    debug = args.debug or os.environ.get("GRASP_AUTOLABEL_DEBUG") == "1"
    try:
        func = getattr(importlib.import_module(module_name), func_name)
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CommandError, ValueError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
