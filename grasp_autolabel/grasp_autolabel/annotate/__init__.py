"""Automatic grasp annotation from two consecutive depth frames, with a quality gate.

Pure functions on numpy arrays (numpy, OpenCV, scikit-image; no ROS, no torch):
:func:`annotate_step` runs the paper's three stages and the gate on one pick.
"""
from grasp_autolabel.annotate.config import AnnotateConfig, load_config
from grasp_autolabel.annotate.pipeline import REASONS, StepLabel, annotate_step

__all__ = ["AnnotateConfig", "load_config", "annotate_step", "StepLabel", "REASONS"]
