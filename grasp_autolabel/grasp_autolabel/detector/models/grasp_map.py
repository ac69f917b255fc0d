"""The grasp-map network (the default detector).

Per-pixel grasp quality, cos 2θ, sin 2θ and opening from RGB-D, in the family of GG-CNN and
GR-ConvNet, sized to train from random weights on a CPU.

Input (:func:`make_input`): the image scaled so its long side is ``input_size`` (320 for a
640x480 camera) and padded to a multiple of 8, five channels:

* R, G, B: ``(value / 255 - 0.5) / 0.25``;
* height: the depth as height above the scene's ground plane, in units of 0.25 m. The plane
  is fitted per image to the farthest surface (a least-squares fit, then refitted to the points
  at or behind it), so camera height and tilt do not change what the network sees, and which
  log lies on which is a plain "higher";
* valid: 1 where the sensor gave depth, 0 where it did not (height 0 there).

Output (``forward``): four maps at half the input resolution (a stride of 2; a log 20 px
across in a 640x480 image is 5 output pixels across):

* ``quality`` in [0, 1] (a sigmoid; the logits are used for the loss);
* ``cos 2θ``, ``sin 2θ`` (θ and θ + π are one value); ``θ = ½ atan2(sin, cos)``;
* ``opening`` in network-input pixels divided by :data:`OPENING_SCALE` (the one scale both
  :func:`draw_targets` and :func:`decode` use).

The jaw size is not learnt: it is the gripper's, ``jaw_width_m · fx / z`` with ``z`` the
depth under the grasp, as the annotator computes it.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import cv2
from grasp_autolabel.core.geometry import as_grasps, normalize_angle
from grasp_autolabel.detector.models.base import ModelFamily
from grasp_autolabel.detector.models.inputs import ground_height, input_scale, resize_inputs
import numpy as np

__all__ = ['GraspMapNetwork', 'FAMILY', 'build', 'make_input', 'draw_targets', 'decode',
           'OPENING_SCALE', 'STRIDE', 'HEIGHT_UNIT_M', 'ground_height', 'OUTPUT_NAMES']

OPENING_SCALE = 64.0  # opening maps hold opening / OPENING_SCALE (network-input pixels)
STRIDE = 2  # output pixel = 2x2 input pixels
PAD = 8  # the input's sides are multiples of this (three stride-2 stages)
HEIGHT_UNIT_M = 0.25
OUTPUT_NAMES = ('quality', 'cos2', 'sin2', 'opening')
CENTRE_FRACTION = 0.4  # the quality target covers this share of each labelled grasp's opening
ARCHS = ('v1', 'v2')


@dataclass(frozen=True)
class GraspMapNetwork:
    """What the weights depend on (saved in every checkpoint, frozen).

    Attributes
    ----------
    channels : str
        ``rgbd`` (colour, height, valid), ``depth`` (height, valid) or ``rgb``.
    input_size : int
        Long side of the network input, pixels (the image is scaled to it).
    width : int
        Channels of the first stage (the deeper stages have more: see :mod:`.grasp_map_net`).
    arch : str
        ``v2`` (the default: stride-2 stem, BatchNorm folded into the convolutions at export,
        0.9 GMAC at 320x240; holes in the depth filled in the height channel, :func:`fill_holes`)
        or ``v1`` (full-resolution stem, GroupNorm, 2.4 GMAC; models made
        before ``arch`` existed are v1).
    """

    model: str = 'grasp-map'
    channels: str = 'rgbd'
    input_size: int = 320
    width: int = 16
    arch: str = 'v2'

    def __post_init__(self):
        if self.channels not in ('rgbd', 'depth', 'rgb'):
            raise ValueError(
                f'channels: {self.channels!r} is not rgbd, depth or rgb for the grasp-map network')
        if not 64 <= int(self.input_size) <= 2048:
            raise ValueError(f'input_size: {self.input_size} is not in 64..2048')
        if not 4 <= int(self.width) <= 256:
            raise ValueError(f'width: {self.width} is not in 4..256')
        if self.arch not in ARCHS:
            raise ValueError(f"arch: {self.arch!r} is not one of {', '.join(ARCHS)}")

    @property
    def in_channels(self) -> int:
        return {'rgbd': 5, 'depth': 2, 'rgb': 3}[self.channels]

    @property
    def uses_depth(self) -> bool:
        return self.channels != 'rgb'


# --------------------------------------------------------------------------- input
def padded_shape(width: int, height: int, input_size: int) -> tuple[int, int]:
    """``(H, W)`` of the network input for an image of ``width`` x ``height``."""
    s = input_scale(width, height, input_size)
    nw, nh = max(1, round(width * s)), max(1, round(height * s))
    return (-(-nh // PAD) * PAD, -(-nw // PAD) * PAD)


def to_tensor(rgb: np.ndarray | None, depth_m: np.ndarray | None,
              network: GraspMapNetwork) -> np.ndarray:
    """Return ``(C, H, W)`` float32 from colour and depth already at network scale.

    Padded (bottom, right) to a multiple of 8.
    """
    src = rgb if rgb is not None else depth_m
    h, w = src.shape[:2]
    ph, pw = -(-h // PAD) * PAD, -(-w // PAD) * PAD
    out = np.zeros((network.in_channels, ph, pw), np.float32)
    c = 0
    if network.channels != 'depth':
        out[:3, :h, :w] = ((rgb.astype(np.float32) / 255.0 - 0.5) / 0.25).transpose(2, 0, 1)
        c = 3
    if network.uses_depth:
        height = ground_height(depth_m) / HEIGHT_UNIT_M
        out[c, :h, :w] = fill_holes(height, depth_m > 0) if network.arch != 'v1' else height
        out[c + 1, :h, :w] = depth_m > 0
    return out


def fill_holes(height: np.ndarray, valid: np.ndarray, steps: int = 4) -> np.ndarray:
    """Return ``height`` with pixels without depth near valid ones given the nearest one's.

    Sensors differ most where they have no depth (one leaves an occlusion band on one side of an
    edge, another blanks both sides, another drops dark surfaces): holes up to ``2 steps`` input
    pixels across are filled from their nearest surroundings (the higher surface where two are as
    near, as it occludes), so the height channel looks alike across sensors; the validity channel
    still tells.
    """
    h = np.where(valid, height, 0.0).astype(np.float32)
    have = valid.copy()
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(steps):
        if have.all():
            break
        grown = cv2.dilate(np.where(have, h, -1e6).astype(np.float32), kernel)
        new = ~have & (grown > -1e5)
        h[new] = grown[new]
        have |= new
    return h


def check_inputs(rgb, depth_m, network: GraspMapNetwork):
    """Return the arrays the network reads, checked: ``(rgb or None, depth or None)``.

    Raises
    ------
    ValueError
        A channel the network reads is missing, or depth and colour differ in size.
    """
    if network.channels != 'depth':
        if rgb is None:
            raise ValueError('this detector reads colour and no image was given')
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f'image: expected (H, W, 3) RGB, got shape {rgb.shape}')
    else:
        rgb = None
    if network.uses_depth:
        if depth_m is None:
            raise ValueError(
                f'this detector reads depth ({network.channels}) and no depth was given')
        depth_m = np.asarray(depth_m, dtype=np.float32)
        if depth_m.ndim != 2:
            raise ValueError(f'depth: expected (H, W), got shape {depth_m.shape}')
        if rgb is not None and depth_m.shape != rgb.shape[:2]:
            raise ValueError(f'depth is {depth_m.shape[1]}x{depth_m.shape[0]} but the image is '
                             f'{rgb.shape[1]}x{rgb.shape[0]}')
    else:
        depth_m = None
    return rgb, depth_m


def make_input(rgb: np.ndarray | None, depth_m: np.ndarray | None,
               network: GraspMapNetwork) -> tuple[np.ndarray, float]:
    """``(C, H, W)`` float32 network input and the scale from image to input pixels.

    Parameters
    ----------
    rgb : ndarray (H, W, 3) uint8, or None for ``channels="depth"``
    depth_m : ndarray (H, W) float, metres, 0 = invalid; None for ``channels="rgb"``
    """
    rgb, depth_m = check_inputs(rgb, depth_m, network)
    h, w = (rgb if rgb is not None else depth_m).shape[:2]
    s = input_scale(w, h, network.input_size)
    return to_tensor(*resize_inputs(rgb, depth_m, s), network), s


# --------------------------------------------------------------------------- targets
def draw_targets(grasps, shape: tuple[int, int], spines=None) -> np.ndarray:
    """Target maps ``(4, H, W)`` float32 at output resolution for grasps in **input** pixels.

    Each grasp marks a rotated rectangle centred on it, ``CENTRE_FRACTION`` of its opening
    across and its jaw size along the spine; where the grasp's ``spines`` entry (its log's spine,
    two end points in input pixels) is known, the strip along the whole spine, less a quarter of
    the opening at each end: any point of a free log's spine is a grasp, and which point a label
    happened to pick is not something to learn. There quality is 1, and cos 2θ, sin 2θ and the
    opening / OPENING_SCALE are the grasp's; elsewhere quality is 0 and the other maps are
    ignored by the loss.
    """
    from grasp_autolabel.core.geometry import rect_to_corners

    g = as_grasps(grasps)
    spines = np.full((len(g), 2, 2),
                     np.nan) if spines is None else np.asarray(spines, dtype=np.float64)
    maps = np.zeros((4,) + tuple(shape), np.float32)
    region = np.zeros(shape, np.uint8)
    for row, spine in zip(g, spines):
        x, y, th, w, h = row
        region[:] = 0
        rects = [(x, y, max(CENTRE_FRACTION * w, 2.0), max(h, 2.0))]
        if np.all(np.isfinite(spine)):
            a, b = spine
            length = float(np.hypot(*(b - a))) - 0.5 * w
            if length > 0:
                c = (a + b) / 2
                rects.append((c[0], c[1], max(CENTRE_FRACTION * w, 2.0), length))
        for cx, cy, across, along in rects:
            small = np.array([[(cx + 0.5) / STRIDE - 0.5, (cy + 0.5) / STRIDE - 0.5, th,
                               max(across / STRIDE, 1.0), max(along / STRIDE, 1.0)]])
            cv2.fillConvexPoly(region, np.round(rect_to_corners(small)[0] * 16).astype(np.int32),
                               1,
                               lineType=cv2.LINE_8, shift=4)
        px, py = int(round((x + 0.5) / STRIDE - 0.5)), int(round((y + 0.5) / STRIDE - 0.5))
        if 0 <= px < shape[1] and 0 <= py < shape[0]:
            region[py, px] = 1
        m = region > 0
        maps[0][m] = 1.0
        maps[1][m] = math.cos(2 * th)
        maps[2][m] = math.sin(2 * th)
        maps[3][m] = w / OPENING_SCALE
    return maps


# --------------------------------------------------------------------------- network
def build(network: GraspMapNetwork):
    """Return the torch module of ``network`` (:mod:`.grasp_map_net`)."""
    from grasp_autolabel.detector.models.grasp_map_net import build_net

    return build_net(network.arch, network.in_channels, int(network.width))


def activate(raw):
    """Raw network output -> the four maps (quality through a sigmoid)."""
    import torch

    return torch.cat([torch.sigmoid(raw[:, :1]), raw[:, 1:]], 1)


def loss(raw, target, *, positive_weight: float = 4.0) -> dict:
    """Per-pixel losses.

    BCE on the quality logits (positives weighted, and the negatives a person marked, where the
    target's quality is -1, as much), smooth-L1 on the angle and the opening where the target's
    quality is 1 (elsewhere they are undefined).
    """
    import torch.nn.functional as F

    marked = target[:, 0] < 0
    q = target[:, 0].clamp(min=0.0)
    pos = q > 0.5
    weight = 1.0 + (positive_weight - 1.0) * (q + marked.float())
    l_q = F.binary_cross_entropy_with_logits(raw[:, 0], q, weight=weight)
    n = pos.sum().clamp(min=1)
    l_ang = (F.smooth_l1_loss(raw[:, 1], target[:, 1], reduction='none', beta=0.1)
             + F.smooth_l1_loss(raw[:, 2], target[:, 2], reduction='none',
                                beta=0.1))[pos].sum() / n
    l_w = F.smooth_l1_loss(raw[:, 3], target[:, 3], reduction='none', beta=0.1)[pos].sum() / n
    zero = raw.sum() * 0
    return {'quality': l_q, 'angle': l_ang if pos.any() else zero,
            'opening': l_w if pos.any() else zero}


# --------------------------------------------------------------------------- decoding
def decode(maps: np.ndarray, scale: float, *, image_size: tuple[int, int], score_threshold: float,
           peak_distance_px: float, quality_sigma: float = 1.0,
           max_peaks: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Decode maps ``(4, H, W)`` (activated) into ``(grasps (K, 5), scores)``, best first.

    Grasps in image pixels with h = 0, before NMS.

    The quality map is smoothed (a Gaussian of ``quality_sigma`` output pixels); the angle and
    opening maps never are. Peaks are local maxima at least ``peak_distance_px`` image pixels
    apart with a smoothed quality of at least ``score_threshold``; the angle and the opening are
    read at the peak; the score is the (unsmoothed) quality there.
    """
    q = np.ascontiguousarray(maps[0], dtype=np.float32)
    qs = cv2.GaussianBlur(q, (0, 0), quality_sigma) if quality_sigma > 0 else q
    r = max(1, int(round(peak_distance_px * scale / STRIDE)))
    dil = cv2.dilate(qs, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    w_img, h_img = image_size
    # output pixels that show the image (not the padding)
    oh = min(q.shape[0], int(math.ceil(h_img * scale / STRIDE)))
    ow = min(q.shape[1], int(math.ceil(w_img * scale / STRIDE)))
    peaks = (qs >= dil - 1e-7) & (qs >= score_threshold)
    peaks[oh:, :] = False
    peaks[:, ow:] = False
    ys, xs = np.nonzero(peaks)
    if not len(ys):
        return np.zeros((0, 5)), np.zeros(0)
    order = np.argsort(-qs[ys, xs], kind='stable')
    ys, xs = ys[order], xs[order]
    # a plateau gives several equal maxima: keep the best, drop any within r of a kept one
    kept: list[int] = []
    for k in range(len(ys)):
        if all((ys[k] - ys[j]) ** 2 + (xs[k] - xs[j]) ** 2 > r * r for j in kept):
            kept.append(k)
            if len(kept) >= max_peaks:
                break
    ys, xs = ys[kept], xs[kept]
    g = np.zeros((len(ys), 5))
    g[:, 0] = ((xs + 0.5) * STRIDE) / scale - 0.5
    g[:, 1] = ((ys + 0.5) * STRIDE) / scale - 0.5
    g[:, 2] = normalize_angle(0.5 * np.arctan2(maps[2][ys, xs], maps[1][ys, xs]))
    g[:, 3] = np.maximum(maps[3][ys, xs], 0.0) * OPENING_SCALE / scale
    return g, np.clip(qs[ys, xs], 0.0, 1.0).astype(np.float64)


# --------------------------------------------------------------------------- the family
class GraspMapFamily(ModelFamily):
    """The grasp-map family's side of :class:`.base.ModelFamily`."""

    name = 'grasp-map'
    network_cls = GraspMapNetwork
    legacy_defaults = {'arch': 'v1', 'width': 24}  # model files written before arch existed

    def build(self, network, *, backbone_weights=None):
        if backbone_weights:
            raise ValueError('--backbone-weights: the grasp-map network has no pretrained '
                             'backbone; it trains from random weights (or --init from a model)')
        return build(network)

    to_tensor = staticmethod(to_tensor)
    make_input = staticmethod(make_input)

    def encode_targets(self, grasps, spines, x, network, negatives=None):
        shape = (x.shape[1] // STRIDE, x.shape[2] // STRIDE)
        maps = draw_targets(grasps, shape, spines)
        if negatives is not None and len(negatives):  # quality -1: a marked negative (loss)
            wrong = draw_targets(negatives, shape)[0] > 0
            maps[0][wrong & (maps[0] < 0.5)] = -1.0
        return {'maps': maps}

    def loss(self, model, images, targets):
        import torch

        return loss(model(torch.stack(images)), torch.stack([t['maps'] for t in targets]))

    def infer(self, model, x):
        return (activate(model(x[None]))[0].float().cpu().numpy(),)

    def onnx_graph(self, model, network, image_size):
        import torch

        class Maps(torch.nn.Module):
            """The network with its maps activated: what the ONNX file computes."""

            def __init__(self, net):
                super().__init__()
                self.net = net

            def forward(self, x):
                return activate(self.net(x))

        ph, pw = padded_shape(*image_size, network.input_size)
        return (Maps(model), (torch.rand(1, network.in_channels, ph, pw),),
                {'input_names': ['input'], 'output_names': ['maps']})

    def onnx_outputs(self, session, x, input_names, output_names):
        return (session.run(None, {input_names[0]: x[None]})[0][0],)

    def decode(self, outputs, scale, image_size, network, decode_settings):
        return decode(outputs[0], scale, image_size=image_size,
                      score_threshold=decode_settings.score_threshold,
                      peak_distance_px=decode_settings.peak_distance_px,
                      quality_sigma=decode_settings.quality_sigma)


FAMILY = GraspMapFamily()
