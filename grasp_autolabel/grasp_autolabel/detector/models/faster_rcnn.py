"""The paper's detector (after Chu et al. 2018).

A torchvision Faster R-CNN whose classes are orientation bins. Kept for the paper's Table 1
(``--model faster-rcnn``).

Encoding (one grasp -> one training target):

* class = 1 + the bin of theta: ``angle_bins`` (18) bins of 10 degrees over [-90, 90). The paper's
  R = 19 classes have a duplicate bin at -90/+90 (the same orientation twice); with theta
  normalised to [-pi/2, pi/2) that bin is folded into the first, so 18 bins + "no grasp" = 19;
* box = a **square** of side w (the opening) centred on the grasp. The paper regresses the
  unrotated w x h rectangle, but a grasp box is 4-7 px tall at 227 px input: measured, the
  median best-anchor IoU was 0.29 and over half of the boxes had no anchor above 0.3 (stride 16,
  anchors 8-28 px), and the thin strip pooled for a diagonal grasp missed the log. A square
  box pools the whole cross-section of the log, every anchor shape fits it
  (:func:`anchor_coverage` measures it), and the jaw size is the gripper's anyway: it is set at
  decoding from ``jaw_width_m`` and the depth under the grasp, as the annotator does.

Decoding: centre = box centre, w = the box's side, theta = the bin's centre; then NMS across
angle classes on the exact rotated rectangles (torchvision's own NMS is per class).

Input: scaled so the long side is ``input_size`` and padded (bottom, right) to a square; RGD
replaces the blue channel with depth normalised per image over its valid pixels (Chu's "depth in
blue").
"""
from __future__ import annotations

from dataclasses import dataclass
import math

from grasp_autolabel.core.geometry import as_grasps, normalize_angle
from grasp_autolabel.detector.models.base import ModelFamily
from grasp_autolabel.detector.models.inputs import input_scale, resize_inputs
import numpy as np

__all__ = ['FasterRCNNNetwork', 'FAMILY', 'build', 'make_input', 'to_tensor', 'encode_grasps',
           'decode', 'anchor_coverage', 'anchor_boxes', 'input_scale']

BACKBONES = ('resnet50', 'resnet18')
STRIDE = 16  # the backbone is cut after its stride-16 stage (res4), as Chu et al.


@dataclass(frozen=True)
class FasterRCNNNetwork:
    """What the weights depend on (saved in every checkpoint, frozen)."""

    model: str = 'faster-rcnn'
    backbone: str = 'resnet18'
    input_size: int = 320
    channels: str = 'rgd'  # rgb | rgd
    angle_bins: int = 18
    anchor_sizes: tuple = (16, 24, 32, 48, 64)
    aspect_ratios: tuple = (1.0,)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: {self.backbone!r} is not one of {', '.join(BACKBONES)}")
        if self.channels not in ('rgb', 'rgd'):
            raise ValueError(
                f"channels: {self.channels!r} is not 'rgb' or 'rgd' for the Faster R-CNN")
        if not 64 <= int(self.input_size) <= 2048:
            raise ValueError(f'input_size: {self.input_size} is not in 64..2048')
        if not 2 <= int(self.angle_bins) <= 180:
            raise ValueError(f'angle_bins: {self.angle_bins} is not in 2..180')
        object.__setattr__(self, 'anchor_sizes', tuple(int(a) for a in self.anchor_sizes))
        object.__setattr__(self, 'aspect_ratios', tuple(float(a) for a in self.aspect_ratios))

    @property
    def uses_depth(self) -> bool:
        return self.channels == 'rgd'


def build(network: FasterRCNNNetwork, *, backbone_weights: str | None = None):
    """Build the Faster R-CNN.

    Weights are random unless ``backbone_weights``, a local torchvision ResNet state_dict file;
    nothing is downloaded.
    """
    import torch
    from torch import nn
    from torchvision.models import resnet18, resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    trunk = (resnet50 if network.backbone == 'resnet50' else resnet18)(weights=None)
    if backbone_weights:
        try:
            state = torch.load(backbone_weights, map_location='cpu', weights_only=True)
        except Exception as exc:  # noqa: B902
            raise ValueError(
                f'{backbone_weights}: cannot be read as a state_dict ({type(exc).__name__}: {exc})'
            ) from None
        state = state.get('state_dict', state) if isinstance(state, dict) else state
        missing, _ = trunk.load_state_dict(state, strict=False)
        if len(missing) > 10:
            raise ValueError(f'{backbone_weights}: not {network.backbone} weights ({len(missing)} '
                             'tensors missing, '
                             f'e.g. {missing[0]})')
    body = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1,
                         trunk.layer2, trunk.layer3)
    body.out_channels = 1024 if network.backbone == 'resnet50' else 256
    anchors = AnchorGenerator(sizes=(network.anchor_sizes,),
                              aspect_ratios=(network.aspect_ratios,))
    pool = MultiScaleRoIAlign(featmap_names=['0'], output_size=7, sampling_ratio=2)
    rep = 1024 if network.backbone == 'resnet50' else 256
    head = TwoMLPHead(body.out_channels * 7 * 7, rep)
    predictor = FastRCNNPredictor(rep, network.angle_bins + 1)
    return FasterRCNN(body, rpn_anchor_generator=anchors, box_roi_pool=pool, box_head=head,
                      box_predictor=predictor,
                      box_batch_size_per_image=128, min_size=network.input_size,
                      max_size=network.input_size,
                      image_mean=[0.45, 0.45, 0.45], image_std=[0.25, 0.25, 0.25],
                      box_score_thresh=0.05, box_nms_thresh=0.3, box_detections_per_img=100,
                      rpn_pre_nms_top_n_test=600, rpn_post_nms_top_n_test=150)


# --------------------------------------------------------------------------- input
def to_tensor(rgb: np.ndarray, depth_m: np.ndarray | None,
              network: FasterRCNNNetwork) -> np.ndarray:
    """``(3, S, S)`` float32 in 0..1 from colour (and depth) already at network scale."""
    img = rgb
    if network.channels == 'rgd':
        d = np.asarray(depth_m, dtype=np.float32)
        valid = d > 0
        img = rgb.copy()
        if valid.any():
            lo, hi = float(d[valid].min()), float(d[valid].max())
            norm = (d - lo) / max(hi - lo, 1e-6) * 255.0
            img[:, :, 2] = np.where(valid, np.clip(norm, 0, 255), 0).astype(np.uint8)
        else:
            img[:, :, 2] = 0
    h, w = img.shape[:2]
    out = np.zeros((3, network.input_size, network.input_size), np.float32)
    out[:, :h, :w] = img.astype(np.float32).transpose(2, 0, 1)[:, :network.input_size,
                                                               :network.input_size] / 255.0
    return out


def make_input(rgb, depth_m, network: FasterRCNNNetwork) -> tuple[np.ndarray, float]:
    """``(3, S, S)`` float32 and the scale from image to input pixels.

    Raises
    ------
    ValueError
        RGD asked for without depth, or depth of another size than the image.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'image: expected (H, W, 3) RGB, got shape {rgb.shape}')
    h, w = rgb.shape[:2]
    if network.channels == 'rgd':
        if depth_m is None:
            raise ValueError(
                'this detector reads RGD (depth in the blue channel) and no depth was given')
        depth_m = np.asarray(depth_m, dtype=np.float32)
        if depth_m.shape != (h, w):
            raise ValueError(
                f'depth is {depth_m.shape[1]}x{depth_m.shape[0]} but the image is {w}x{h}')
    else:
        depth_m = None
    s = input_scale(w, h, network.input_size)
    return to_tensor(*resize_inputs(rgb, depth_m, s), network), s


# --------------------------------------------------------------------------- targets
def encode_grasps(grasps, network: FasterRCNNNetwork) -> dict:
    """Grasps in **input** pixels -> ``{boxes: (N, 4) float32, labels: (N,) int64 1..bins}``."""
    g = as_grasps(grasps)
    theta = normalize_angle(g[:, 2])
    bins = np.clip(np.floor((theta + math.pi / 2) / (math.pi / network.angle_bins)), 0,
                   network.angle_bins - 1)
    half = g[:, 3] / 2
    boxes = np.stack([g[:, 0] - half, g[:, 1] - half, g[:, 0] + half, g[:, 1] + half], 1)
    return {'boxes': boxes.astype(np.float32).reshape(-1, 4), 'labels': bins.astype(np.int64) + 1}


def anchor_boxes(network: FasterRCNNNetwork) -> np.ndarray:
    """Return the anchor shapes ``(A, 2)``, (width, height) in input pixels.

    torchvision's rule: ratio = height / width, area = size².
    """
    out = []
    for s in network.anchor_sizes:
        for r in network.aspect_ratios:
            out.append((s / math.sqrt(r), s * math.sqrt(r)))
    return np.array(out)


def anchor_coverage(boxes: np.ndarray, network: FasterRCNNNetwork) -> dict:
    """How well the anchors cover training ``boxes`` ``(N, 4)`` (input pixels).

    For each box the best IoU over all anchors on the stride-16 grid; returns the median and the
    shares above 0.3 and 0.5 (the RPN's negative and positive thresholds are 0.3 / 0.7).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if not len(boxes):
        return {'boxes': 0, 'median_best_iou': None, 'share_above_0.3': None,
                'share_above_0.5': None}
    shapes = anchor_boxes(network)
    best = np.zeros(len(boxes))
    for k, b in enumerate(boxes):
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        gx = np.floor(cx / STRIDE) * STRIDE + np.array([0, STRIDE])
        gy = np.floor(cy / STRIDE) * STRIDE + np.array([0, STRIDE])
        for ax in gx:
            for ay in gy:
                a = np.column_stack([ax - shapes[:, 0] / 2, ay - shapes[:, 1] / 2,
                                     ax + shapes[:, 0] / 2, ay + shapes[:, 1] / 2])
                iw = np.clip(np.minimum(a[:, 2], b[2]) - np.maximum(a[:, 0], b[0]), 0, None)
                ih = np.clip(np.minimum(a[:, 3], b[3]) - np.maximum(a[:, 1], b[1]), 0, None)
                inter = iw * ih
                union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[2] - b[0]) * (
                    b[3] - b[1]) - inter
                best[k] = max(best[k], float((inter / union).max()))
    return {'boxes': int(len(boxes)), 'median_best_iou': round(float(np.median(best)), 3),
            'share_above_0.3': round(float((best > 0.3).mean()), 3),
            'share_above_0.5': round(float((best > 0.5).mean()), 3)}


# --------------------------------------------------------------------------- decoding
def decode(boxes, scores, labels, scale: float, network: FasterRCNNNetwork, *,
           score_threshold: float,
           image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Decode the network output (input pixels) into ``(grasps (K, 5), scores)``, best first.

    Grasps in image pixels with h = 0, after the score threshold (NMS follows in the predictor).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    keep = scores >= score_threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    g = np.zeros((len(boxes), 5))
    if len(boxes):
        g[:, 0] = ((boxes[:, 0] + boxes[:, 2]) / 2 + 0.5) / scale - 0.5
        g[:, 1] = ((boxes[:, 1] + boxes[:, 3]) / 2 + 0.5) / scale - 0.5
        g[:, 2] = normalize_angle(-math.pi / 2 + (labels - 0.5) * math.pi / network.angle_bins)
        g[:, 3] = np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]),
                                     0)) / scale
        w, h = image_size
        inside = (g[:, 0] >= 0) & (g[:, 0] < w) & (g[:, 1] >= 0) & (g[:, 1] < h)
        g, scores = g[inside], scores[inside]
    order = np.argsort(-scores, kind='stable')
    return g[order], scores[order]


# --------------------------------------------------------------------------- the family
class FasterRCNNFamily(ModelFamily):
    """The Faster R-CNN family's side of :class:`.base.ModelFamily`."""

    name = 'faster-rcnn'
    network_cls = FasterRCNNNetwork
    # the paper's schedule: Adam 1e-4, batch 4
    train_defaults = {'lr': 1e-4, 'batch_size': 4, 'max_steps': 700, 'weight_decay': 0.0}
    # a briefly trained Faster R-CNN scores its detections low (measured: none above 0.3 after
    # 300 CPU steps); its class scores are not the grasp-map's quality
    decode_defaults = {'score_threshold': 0.05}

    def model_name(self, network):
        return f'{self.name}-{network.backbone}'

    def build(self, network, *, backbone_weights=None):
        return build(network, backbone_weights=backbone_weights)

    to_tensor = staticmethod(to_tensor)
    make_input = staticmethod(make_input)

    def encode_targets(self, grasps, spines, x, network, negatives=None):
        return encode_grasps(grasps, network)  # a box detector has no map to mark negatives in

    def loss(self, model, images, targets):
        return model(list(images), [{'boxes': t['boxes'], 'labels': t['labels']}
                                    for t in targets])

    def infer(self, model, x):
        out = model([x])[0]
        return (out['boxes'].cpu().numpy(), out['scores'].cpu().numpy(),
                out['labels'].cpu().numpy())

    def onnx_graph(self, model, network, image_size):
        import torch

        names = {'input_names': ['image'],
                 'output_names': ['boxes', 'labels', 'scores']}  # torchvision's order
        return model, ([torch.rand(3, network.input_size, network.input_size)],), names

    def onnx_outputs(self, session, x, input_names, output_names):
        out = dict(zip(output_names, session.run(None, {input_names[0]: x})))
        return out['boxes'], out['scores'], out['labels']

    def decode(self, outputs, scale, image_size, network, decode_settings):
        return decode(*outputs, scale, network, score_threshold=decode_settings.score_threshold,
                      image_size=image_size)


FAMILY = FasterRCNNFamily()
