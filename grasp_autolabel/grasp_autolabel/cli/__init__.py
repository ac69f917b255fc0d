"""The tools, the top layer: the ``grasp-autolabel`` command, the demo and its report."""
from grasp_autolabel.cli.main import main

__all__ = ['main']
