"""The detector's network families, one module each, behind one small interface.

``grasp-map`` (the default, :mod:`.grasp_map`)
    per-pixel grasp quality, cos 2θ, sin 2θ and opening maps from RGB-D.
``faster-rcnn`` (the paper's, :mod:`.faster_rcnn`)
    a torchvision Faster R-CNN with orientation classes.

Each family has a frozen ``*Network`` dataclass (what the weights depend on), and
:func:`build_model` makes its torch module. Importing this package imports no torch.
"""
from __future__ import annotations

from dataclasses import asdict, fields

from grasp_autolabel.detector.models.faster_rcnn import FasterRCNNNetwork
from grasp_autolabel.detector.models.grasp_map import GraspMapNetwork

__all__ = ['GraspMapNetwork', 'FasterRCNNNetwork', 'decode_outputs', 'MODELS', 'DEFAULT_MODEL',
           'network_from_dict', 'network_to_dict', 'build_model', 'family']

MODELS = {'grasp-map': GraspMapNetwork, 'faster-rcnn': FasterRCNNNetwork}
DEFAULT_MODEL = 'grasp-map'


def family(network):
    """Return the module implementing ``network``'s family."""
    from grasp_autolabel.detector.models import faster_rcnn, grasp_map

    return grasp_map if network.model == 'grasp-map' else faster_rcnn


def network_from_dict(d: dict):
    """Return a ``*Network`` from its dict (checkpoint, ONNX metadata or a config file).

    Raises
    ------
    ValueError
        An unknown model family or setting, or a value out of range.
    """
    if not isinstance(d, dict):
        raise ValueError(f'expected a mapping of network settings, got {type(d).__name__}')
    model = d.get('model', DEFAULT_MODEL)
    if model not in MODELS:
        raise ValueError(f"model: {model!r} is not one of {', '.join(MODELS)}")
    cls = MODELS[model]
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown {model} network setting(s): {', '.join(unknown)}")
    return cls(**d)


def network_to_dict(network) -> dict:
    d = asdict(network)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def build_model(network, *, backbone_weights: str | None = None):
    """Return the torch module of ``network`` (random weights; ``backbone_weights``.

    The Faster R-CNN's ImageNet ResNet from a local file).
    """
    if network.model == 'faster-rcnn':
        return family(network).build(network, backbone_weights=backbone_weights)
    if backbone_weights:
        raise ValueError('--backbone-weights: the grasp-map network has no pretrained backbone; '
                         'it trains from random weights')
    return family(network).build(network)


def decode_outputs(network, outputs: tuple, scale: float, image_size: tuple[int, int], decode):
    """Decode network outputs into grasps in image pixels, best first, before NMS.

    Outputs are ``(maps,)`` or ``(boxes, scores, labels)`` in network-input pixels; the result is
    ``(grasps (K, 5) in image pixels with h = 0, scores (K,))``. ``scale`` maps image to input
    pixels, ``decode`` is a ``config.DecodeSettings``.
    """
    fam = family(network)
    if network.model == 'grasp-map':
        return fam.decode(outputs[0], scale, image_size=image_size,
                          score_threshold=decode.score_threshold,
                          peak_distance_px=decode.peak_distance_px,
                          quality_sigma=decode.quality_sigma)
    return fam.decode(*outputs, scale, network, score_threshold=decode.score_threshold,
                      image_size=image_size)
