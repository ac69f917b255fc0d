"""Automatic grasp annotation from two consecutive depth frames, with a quality gate.

Pure functions on numpy arrays (numpy, OpenCV, scikit-image; no ROS, no torch):
:func:`annotate_step` runs the paper's three stages and the gate on one pick.

The names below load on first use: a light user of one submodule (the capture node needs only
``segment.noise_sigma``) does not pay for scikit-image and SciPy at start-up.
"""
import importlib

_EXPORTS = {'AnnotateConfig': 'config', 'load_config': 'config', 'annotate_step': 'pipeline',
            'StepLabel': 'pipeline', 'Reason': 'reasons'}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f'grasp_autolabel.annotate.{_EXPORTS[name]}'), name)
    raise AttributeError(f"module 'grasp_autolabel.annotate' has no attribute {name!r}")
