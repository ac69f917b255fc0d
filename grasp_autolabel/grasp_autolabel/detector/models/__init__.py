"""The detector's network families: a registry of one module each, behind one interface.

``grasp-map`` (the default, :mod:`.grasp_map`)
    per-pixel grasp quality, cos 2θ, sin 2θ and opening maps from RGB-D.
``faster-rcnn`` (the paper's, :mod:`.faster_rcnn`)
    a torchvision Faster R-CNN with orientation classes.

Each family module defines a frozen ``*Network`` dataclass (what the weights depend on) and
``FAMILY``, a :class:`.base.ModelFamily` (build, inputs, targets, loss, inference, ONNX graph,
decoding, defaults). A third family is one module and one line in :data:`FAMILIES`. Importing
this package imports no torch.
"""
from __future__ import annotations

from dataclasses import asdict, fields

from grasp_autolabel.core.errors import UnknownFamilyError
from grasp_autolabel.detector.models import faster_rcnn, grasp_map
from grasp_autolabel.detector.models.base import ModelFamily
from grasp_autolabel.detector.models.faster_rcnn import FasterRCNNNetwork
from grasp_autolabel.detector.models.grasp_map import GraspMapNetwork

__all__ = ['GraspMapNetwork', 'FasterRCNNNetwork', 'ModelFamily', 'FAMILIES', 'DEFAULT_MODEL',
           'MODELS', 'UnknownFamilyError', 'get_family', 'family', 'network_from_dict',
           'network_to_dict', 'build_model', 'decode_outputs']

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (
    grasp_map.FAMILY,
    faster_rcnn.FAMILY,
)}
DEFAULT_MODEL = 'grasp-map'
MODELS = {name: f.network_cls for name, f in FAMILIES.items()}  # name -> its *Network class


def get_family(name, *, where: str = 'model') -> ModelFamily:
    """Return the family called ``name``; UnknownFamilyError naming ``where`` otherwise."""
    if name not in FAMILIES:
        names = ', '.join(FAMILIES)
        raise UnknownFamilyError(f'{where}: unknown detector family {name!r} (this version '
                                 f'has {names})')
    return FAMILIES[name]


def family(network) -> ModelFamily:
    """Return the family of a ``*Network``."""
    return get_family(network.model)


def network_from_dict(d: dict, *, require_model: bool = False, where: str = 'model'):
    """Return a ``*Network`` from its dict (checkpoint, ONNX metadata or a config file).

    ``require_model``: the dict must name its family (a model file always does; a config file
    may leave it to the default).

    Raises
    ------
    ValueError
        An unknown model family (:class:`UnknownFamilyError`) or setting, or a value out of range.
    """
    if not isinstance(d, dict):
        raise ValueError(f'expected a mapping of network settings, got {type(d).__name__}')
    if require_model and 'model' not in d:
        raise UnknownFamilyError(f'{where}: names no detector family (no "model" in its network)')
    name = d.get('model', DEFAULT_MODEL)
    fam = get_family(name, where=where)
    cls = fam.network_cls
    if require_model:  # a model file: what it leaves out, it was written before it existed
        d = {**fam.legacy_defaults, **d}
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {name} network setting(s): {', '.join(unknown)}")
    return cls(**d)


def network_to_dict(network) -> dict:
    d = asdict(network)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def build_model(network, *, backbone_weights: str | None = None):
    """Return the torch module of ``network`` (random weights; ``backbone_weights``: a file)."""
    return family(network).build(network, backbone_weights=backbone_weights)


def decode_outputs(network, outputs: tuple, scale: float, image_size: tuple[int, int], decode):
    """Decode network outputs into grasps in image pixels, best first, before NMS.

    The result is ``(grasps (K, 5) in image pixels with h = 0, scores (K,))``. ``scale`` maps
    image to input pixels, ``decode`` is a ``config.DecodeSettings``.
    """
    return family(network).decode(outputs, scale, image_size, network, decode)
