"""The oriented grasp detector: model, training, evaluation, ONNX export (torch/torchvision).

Import the submodules (``detector.model``, ``detector.train``, ...); this package imports no torch
by itself.
"""
