"""The oriented grasp detector (torch/torchvision), split the torchvision way.

``config``      network (frozen, in the checkpoint) apart from train and decode settings
``models/``     one module per family: ``grasp_map`` (the default), ``faster_rcnn`` (the paper's)
``transforms``  image, depth and grasps transformed together
``data``        a grasp dataset as ``(image tensor, target dict)`` items
``engine``      ``train_one_epoch`` and ``evaluate`` (validation)
``train``       the training loop: schedule, checkpoints, best by validation
``evaluate``    valid candidates, coverage, dense rectangle metric, invalid by reason
``predict``     checkpoints and predictors (torch, ONNX Runtime)
``export``      ONNX export
``run_predict`` predictions over capture sessions

This package imports no torch by itself; the modules import it where they need it.
"""
