"""A simulated log-sorting cell: RGB-D picking sequences with ground truth (no ROS, no torch)."""
from grasp_autolabel.sim.cell import FAULT_KINDS, CellConfig, SimCell, StepTruth, default_intrinsics
from grasp_autolabel.sim.sensor import SensorModel

__all__ = ["CellConfig", "SimCell", "StepTruth", "SensorModel", "FAULT_KINDS", "default_intrinsics"]
