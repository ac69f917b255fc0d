"""Grasp datasets on disk: the layout of DESIGN.md, written by ``label`` and the bag exporter."""
from grasp_autolabel.dataset.store import DatasetError, GraspDataset

__all__ = ['GraspDataset', 'DatasetError']
