"""What a detector family is: the one interface training, prediction and export use.

A family is one module under ``models/`` that defines its frozen ``*Network`` dataclass (what the
weights depend on) and one :class:`ModelFamily` instance, ``FAMILY``; the registry
(:data:`grasp_autolabel.detector.models.FAMILIES`) lists those instances. Nothing outside the
family's module knows how its network is built, fed, trained, decoded or exported.

The contract, with arrays in network-input pixels unless named otherwise:

* ``make_input(rgb, depth_m, network) -> (x (C, H, W) float32, scale)``: a whole frame, checked
  (ValueError naming the missing or mis-sized channel); ``scale`` maps image to input pixels;
* ``input_scale`` and ``to_tensor``: the same in two halves, for samples already at network
  scale (training resizes once, then augments at network scale);
* ``encode_targets(grasps, spines, x) -> {name: ndarray}``: a sample's training targets;
* ``loss(model, images, targets) -> {name: scalar tensor}``: the training losses of a batch;
* ``infer(model, x) -> tuple of ndarrays``: the network's outputs for one input (torch);
* ``onnx_graph(model, network, image_size) -> (module, example args, names)`` and
  ``onnx_outputs(session, x, input names, output names)``: the same outputs from the exported
  graph in ONNX Runtime (the names read once, when the model is loaded);
* ``decode(outputs, scale, image_size, network, decode) -> (grasps (K, 5), scores (K,))``:
  grasps in image pixels with h = 0, best first, before NMS;
* ``train_defaults`` / ``decode_defaults``: the family's changes to ``TrainSettings`` and
  ``DecodeSettings``; ``legacy_defaults``: what a network setting missing from an older model
  file meant.
"""
from __future__ import annotations

__all__ = ['ModelFamily']


class ModelFamily:
    """One detector family (subclassed once per family module)."""

    name: str = ''
    network_cls: type = type(None)
    train_defaults: dict = {}
    decode_defaults: dict = {}
    # network settings a model file written before they existed meant (not today's defaults)
    legacy_defaults: dict = {}

    def model_name(self, network) -> str:
        """Return a short name for model ids (``grasp-map``, ``faster-rcnn-resnet18``)."""
        return self.name

    def build(self, network, *, backbone_weights: str | None = None):
        """Return the torch module with random weights (or a pretrained backbone from a file)."""
        raise NotImplementedError

    def input_scale(self, width: int, height: int, network) -> float:
        """Image pixels -> network-input pixels (the long side scaled to ``input_size``)."""
        from grasp_autolabel.detector.models.inputs import input_scale

        return input_scale(width, height, network.input_size)

    def to_tensor(self, rgb, depth_m, network):
        raise NotImplementedError

    def make_input(self, rgb, depth_m, network):
        raise NotImplementedError

    def encode_targets(self, grasps, spines, x, network, negatives=None) -> dict:
        raise NotImplementedError

    def loss(self, model, images: list, targets: list) -> dict:
        raise NotImplementedError

    def infer(self, model, x) -> tuple:
        raise NotImplementedError

    def onnx_graph(self, model, network, image_size) -> tuple:
        raise NotImplementedError

    def onnx_outputs(self, session, x, input_names: list, output_names: list) -> tuple:
        raise NotImplementedError

    def decode(self, outputs: tuple, scale: float, image_size, network, decode) -> tuple:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'<detector family {self.name}>'
