"""``grasp-autolabel info``: what works in this environment."""
from __future__ import annotations

import importlib
import json
import platform
import sys

from grasp_autolabel import __version__


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # noqa: B902 - any failure to import means "not available"
        return None
    return str(getattr(mod, '__version__', 'available'))


def collect() -> dict:
    report = {'grasp_autolabel': __version__, 'python': platform.python_version(),
              'numpy': _version('numpy'), 'opencv': _version('cv2'),
              'scikit-image': _version('skimage'),
              'rosbags': _version('rosbags') and _bag_version(), 'rclpy': _version('rclpy'),
              'grasp_autolabel_msgs': _version('grasp_autolabel_msgs.msg'),
              'torch': _version('torch'), 'torchvision': _version('torchvision'),
              'onnxruntime': _version('onnxruntime')}
    if report['torch']:
        import torch

        report['cuda'] = torch.cuda.is_available()
    return report


def _bag_version() -> str:
    from importlib.metadata import version

    return version('rosbags')


def main(args) -> int:
    report = collect()
    if args.json:
        print(json.dumps(report))
        return 0
    for key, value in report.items():
        shown = 'not available' if value is None else value
        print(f'{key:22s} {shown}')
    if report['rclpy'] is None or report['grasp_autolabel_msgs'] is None:
        print('\nnodes need rclpy and grasp_autolabel_msgs: run `make setup`, then '
              '`source .venv/bin/activate && source install/setup.bash`', file=sys.stderr)
    return 0
