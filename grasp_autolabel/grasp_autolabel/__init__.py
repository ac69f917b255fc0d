"""grasp_autolabel: automatic oriented-grasp labels from sequential RGB-D frames.

The core (geometry, annotate, sim, dataset, detector) is plain Python; only ``ros/`` imports
rclpy and message packages. See README.md for the grasp convention and the data formats.
"""
__version__ = '0.1.0'
