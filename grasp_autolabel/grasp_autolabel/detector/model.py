"""The oriented grasp detector (after Chu et al. 2018): a torchvision Faster R-CNN whose classes
are orientation bins.

Encoding (one grasp -> one training target, exact but for the angle's bin):

* class = 1 + the bin of theta: ``angle_bins`` (18) bins of 10 degrees over [-90, 90). The paper's
  R = 19 classes have a duplicate bin at -90/+90 (the same orientation twice); with theta
  normalised to [-pi/2, pi/2) that bin is folded into the first, so 18 bins + "no grasp" = 19;
* box = the *unrotated* rectangle ``[x - w/2, y - h/2, x + w/2, y + h/2]`` (w = opening, h = jaw),
  so the box's width and height regress the opening and the jaw size directly.

Decoding: centre = box centre, (w, h) = box size, theta = the bin's centre; then NMS across angle
classes on the exact rotated rectangles (torchvision's own NMS is per class).

Images are letterboxed: scaled by ``input_size / max(W, H)`` and padded (bottom, right) to a
square ``input_size``; grasps scale with them (uniform, so angles are kept). RGD input replaces
the blue channel with depth, normalised per image to 0..255 over its valid pixels (Chu's
"depth in blue").
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import cv2
import numpy as np

from grasp_autolabel.geometry import as_grasps, normalize_angle

__all__ = ["DetectorConfig", "BACKBONES", "build_model", "encode_grasps", "decode_detections", "preprocess",
           "rotated_nms", "letterbox_scale"]

BACKBONES = ("resnet50", "resnet18")


@dataclass
class DetectorConfig:
    """Everything that shapes the network and its input; saved in every checkpoint.

    ``resnet50`` is the paper's backbone (ResNet-50 up to its stride-16 stage); ``resnet18`` the
    light one for CPU use (same structure, a quarter of the cost).
    """

    backbone: str = "resnet50"
    input_size: int = 227
    channels: str = "rgb"  # rgb | rgd
    angle_bins: int = 18
    anchor_sizes: tuple = (8, 16, 24, 28)
    aspect_ratios: tuple = (0.5, 1.0, 2.0)
    score_threshold: float = 0.3  # candidates kept after decoding
    nms_iou: float = 0.25  # rotated IoU above which a lower-scored candidate is suppressed
    max_candidates: int = 10
    # training
    lr: float = 1e-4
    batch_size: int = 4
    max_steps: int = 5000
    augment: bool = True
    max_shift_px: float = 50.0
    max_rotation_deg: float = 180.0
    split: str = "session"  # which split's train part to use: session | image | none
    use_later_grasps: bool = True  # also train on later picks' grasps carried back (dataset/propagate.py)
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: {self.backbone!r} is not one of {', '.join(BACKBONES)}")
        if self.channels not in ("rgb", "rgd"):
            raise ValueError(f"channels: {self.channels!r} is not 'rgb' or 'rgd'")
        if not 64 <= int(self.input_size) <= 2048:
            raise ValueError(f"input_size: {self.input_size} is not in 64..2048")
        if self.split not in ("session", "image", "none"):
            raise ValueError(f"split: {self.split!r} is not session, image or none")
        self.anchor_sizes = tuple(int(a) for a in self.anchor_sizes)
        self.aspect_ratios = tuple(float(a) for a in self.aspect_ratios)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["anchor_sizes"], d["aspect_ratios"] = list(self.anchor_sizes), list(self.aspect_ratios)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DetectorConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown detector setting(s): {', '.join(unknown)}")
        return cls(**d)

    def network_dict(self) -> dict:
        """The settings a checkpoint's weights depend on."""
        return {k: self.to_dict()[k] for k in ("backbone", "input_size", "channels", "angle_bins", "anchor_sizes",
                                               "aspect_ratios")}


# --------------------------------------------------------------------------- the network
def build_model(config: DetectorConfig, *, backbone_weights: str | None = None):
    """The Faster R-CNN of ``config`` (weights random unless ``backbone_weights``, a local
    torchvision ResNet state_dict file; nothing is downloaded)."""
    import torch
    from torch import nn
    from torchvision.models import resnet18, resnet50
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    trunk = (resnet50 if config.backbone == "resnet50" else resnet18)(weights=None)
    if backbone_weights:
        try:
            state = torch.load(backbone_weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{backbone_weights}: cannot be read as a state_dict ({type(exc).__name__}: {exc})") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        missing, unexpected = trunk.load_state_dict(state, strict=False)
        if len(missing) > 10:
            raise ValueError(f"{backbone_weights}: not {config.backbone} weights ({len(missing)} tensors missing, "
                             f"e.g. {missing[0]})")
    # up to the stride-16 stage (res4), as Chu et al.; the head pools 7x7 from it
    body = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool, trunk.layer1, trunk.layer2, trunk.layer3)
    body.out_channels = 1024 if config.backbone == "resnet50" else 256
    anchors = AnchorGenerator(sizes=(config.anchor_sizes,), aspect_ratios=(config.aspect_ratios,))
    pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2)
    # the box head: two FC layers on the pooled 7x7 features (1024 wide for ResNet-50 as torchvision's;
    # 256 for the light backbone, where the 1024-wide head would cost more than the backbone)
    rep = 1024 if config.backbone == "resnet50" else 256
    head = TwoMLPHead(body.out_channels * 7 * 7, rep)
    predictor = FastRCNNPredictor(rep, config.angle_bins + 1)
    model = FasterRCNN(body, rpn_anchor_generator=anchors, box_roi_pool=pool, box_head=head, box_predictor=predictor,
                       box_batch_size_per_image=128,
                       min_size=config.input_size, max_size=config.input_size,
                       image_mean=[0.45, 0.45, 0.45], image_std=[0.25, 0.25, 0.25],
                       box_score_thresh=min(0.05, config.score_threshold), box_nms_thresh=0.3, box_detections_per_img=100,
                       rpn_pre_nms_top_n_test=600, rpn_post_nms_top_n_test=150)
    return model


# --------------------------------------------------------------------------- input
def letterbox_scale(width: int, height: int, input_size: int) -> float:
    return input_size / float(max(width, height))


def preprocess(rgb: np.ndarray, depth_m: np.ndarray | None, config: DetectorConfig) -> tuple[np.ndarray, float]:
    """``(3, S, S)`` float32 in 0..1 and the scale from image to input pixels.

    Raises
    ------
    ValueError
        RGD asked for without depth, or depth of another size than the image.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image: expected (H, W, 3) RGB, got shape {rgb.shape}")
    h, w = rgb.shape[:2]
    img = rgb
    if config.channels == "rgd":
        if depth_m is None:
            raise ValueError("this detector reads RGD (depth in the blue channel) and no depth was given")
        d = np.asarray(depth_m, dtype=np.float32)
        if d.shape != (h, w):
            raise ValueError(f"depth is {d.shape[1]}x{d.shape[0]} but the image is {w}x{h}")
        valid = d > 0
        img = rgb.copy()
        if valid.any():
            lo, hi = float(d[valid].min()), float(d[valid].max())
            norm = (d - lo) / max(hi - lo, 1e-6) * 255.0
            img[:, :, 2] = np.where(valid, np.clip(norm, 0, 255), 0).astype(np.uint8)
        else:
            img[:, :, 2] = 0
    s = letterbox_scale(w, h, config.input_size)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    small = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    out = np.zeros((config.input_size, config.input_size, 3), np.float32)
    out[:nh, :nw] = small.astype(np.float32) / 255.0
    return np.ascontiguousarray(out.transpose(2, 0, 1)), s


# --------------------------------------------------------------------------- targets
def encode_grasps(grasps, scale: float, config: DetectorConfig) -> tuple[np.ndarray, np.ndarray]:
    """Grasps (image pixels) -> ``(boxes (N, 4) in input pixels, labels (N,) in 1..angle_bins)``."""
    g = as_grasps(grasps).copy()
    g[:, [0, 1, 3, 4]] *= scale
    theta = normalize_angle(g[:, 2])
    bins = np.clip(np.floor((theta + math.pi / 2) / (math.pi / config.angle_bins)), 0, config.angle_bins - 1)
    boxes = np.stack([g[:, 0] - g[:, 3] / 2, g[:, 1] - g[:, 4] / 2, g[:, 0] + g[:, 3] / 2, g[:, 1] + g[:, 4] / 2], 1)
    return boxes.astype(np.float32), bins.astype(np.int64) + 1


def decode_detections(boxes, scores, labels, scale: float, config: DetectorConfig,
                      image_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Network output (input pixels) -> ``(grasps (K, 5) in image pixels, scores (K,))``, best
    first, after the score threshold and NMS across angle classes."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    keep = scores >= config.score_threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    g = np.zeros((len(boxes), 5))
    if len(boxes):
        g[:, 0] = (boxes[:, 0] + boxes[:, 2]) / 2 / scale
        g[:, 1] = (boxes[:, 1] + boxes[:, 3]) / 2 / scale
        g[:, 2] = normalize_angle(-math.pi / 2 + (labels - 0.5) * math.pi / config.angle_bins)
        g[:, 3] = (boxes[:, 2] - boxes[:, 0]) / scale
        g[:, 4] = (boxes[:, 3] - boxes[:, 1]) / scale
        if image_size is not None:  # centres in the padding are not in the image
            w, h = image_size
            inside = (g[:, 0] >= 0) & (g[:, 0] < w) & (g[:, 1] >= 0) & (g[:, 1] < h)
            g, scores = g[inside], scores[inside]
    order = np.argsort(-scores, kind="stable")
    g, scores = g[order], scores[order]
    keep = rotated_nms(g, config.nms_iou, limit=config.max_candidates)
    return g[keep], scores[keep]


def rotated_nms(grasps: np.ndarray, iou_threshold: float, *, limit: int | None = None) -> list[int]:
    """Greedy NMS over grasps sorted best first, on the exact rotated-rectangle IoU."""
    from grasp_autolabel.geometry import rotated_iou

    kept: list[int] = []
    for i in range(len(grasps)):
        if all(rotated_iou(grasps[i], grasps[j]) <= iou_threshold for j in kept):
            kept.append(i)
            if limit is not None and len(kept) >= limit:
                break
    return kept
