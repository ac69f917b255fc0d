"""The nodes' console scripts.

A Ctrl-C or SIGTERM while a node is still importing (a second or more on a loaded machine) ends it
at once with exit 0, as it does once the node spins: nothing is open yet (no DDS participant, no
file), so there is nothing to clean up, and no KeyboardInterrupt traceback from deep inside an
import.
"""
from __future__ import annotations

import importlib
import os
import signal
import sys


def _stop_now(signum, frame):
    os._exit(0)


def _run(module: str) -> int:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _stop_now)
    main = importlib.import_module(f'grasp_autolabel.ros.{module}').main
    return main()  # run_node takes SIGINT and SIGTERM over before anything is opened


def sim_camera_node() -> int:
    return _run('sim_camera_node')


def capture_node() -> int:
    return _run('capture_node')


def autolabel_node() -> int:
    return _run('autolabel_node')


def inference_node() -> int:
    return _run('inference_node')


if __name__ == '__main__':
    sys.exit(_run(sys.argv[1]))
