"""A simulated log-sorting cell: RGB-D picking sequences with ground truth (no ROS, no torch)."""
from grasp_autolabel.sim.cell import (CellConfig, default_intrinsics, FAULT_KINDS, SimCell,
                                      StepTruth)
from grasp_autolabel.sim.sensor import SensorModel

__all__ = ['CellConfig', 'SimCell', 'StepTruth', 'SensorModel', 'FAULT_KINDS',
           'default_intrinsics']
