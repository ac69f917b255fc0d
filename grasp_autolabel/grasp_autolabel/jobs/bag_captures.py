"""Captures from a rosbag2 recording.

The topics to read, colour and depth decoded and paired, and the frames to label (every frame of a
``captured`` bag; the settled frames of a ``continuous`` one, averaged). The reading half of
``grasp-autolabel export``.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from grasp_autolabel.capture import SettleDetector
from grasp_autolabel.core.camera import CameraIntrinsics, same_camera
from grasp_autolabel.core.depth import depth_to_metres, metres_to_depth_units
from grasp_autolabel.core.imageheader import check_pixels, encoded_size
from grasp_autolabel.core.msg_codecs import camera_info_to_intrinsics, image_to_numpy, to_rgb8
from grasp_autolabel.core.stamps import StampPairer
from grasp_autolabel.dataset.bags import BagError, BagSource, cdr_stamp_ns
import numpy as np

__all__ = ['ExportOptions', 'Capture', 'find_topics', 'captures', 'average_depth',
           'describe_topics', 'Decoder',
           'DEFAULT_TOPICS']

# (colour, depth, camera_info) per mode: the capture node's and realsense2_camera's names
DEFAULT_TOPICS = {'captured': ('/capture_node/captured/rgb', '/capture_node/captured/depth',
                               '/capture_node/captured/camera_info'),
                  'continuous': ('/camera/camera/color/image_raw',
                                 '/camera/camera/aligned_depth_to_color/image_raw',
                                 '/camera/camera/color/camera_info')}
_SUFFIXES = {'captured': ('/captured/rgb', '/captured/depth', '/captured/camera_info'),
             'continuous': ('/color/image_raw', '/aligned_depth_to_color/image_raw',
                            '/color/camera_info')}
IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
INFO_TYPE = 'sensor_msgs/msg/CameraInfo'


@dataclass
class ExportOptions:
    """How `export` reads a bag: recording kind, topics, trigger, settling and averaging."""

    mode: str = 'auto'  # auto | captured | continuous
    topics: tuple | None = None  # (colour, depth, camera_info)
    trigger: str | None = None
    settle_s: float = 0.5
    average: int = 5
    depth_scale: float = 0.001  # metres per unit of integer depth
    camera_info: CameraIntrinsics | None = None  # used when the bag has no camera_info
    max_pair_dt: float = 0.02

    def to_dict(self) -> dict:
        return {'mode': self.mode, 'topics': list(self.topics) if self.topics else None,
                'trigger': self.trigger,
                'settle_s': self.settle_s, 'average': self.average,
                'depth_scale': self.depth_scale}


# ------------------------------------------------------------------------------- topics
def describe_topics(topics: dict) -> str:
    if not topics:
        return 'it holds no topics'
    return 'it has: ' + ', '.join(f"{t.name} ({t.msgtype}, {t.count if t.count >= 0 else '?'} "
                                  'msgs)'
                                  for t in sorted(topics.values(), key=lambda t: t.name))


def find_topics(bag: BagSource, mode: str = 'auto',
                topics=None) -> tuple[str, tuple[str, str, str | None]]:
    """Which mode and which (colour, depth, camera_info) topics to read from ``bag``.

    Raises
    ------
    BagError
        The topics are missing (listing what the bag has) or of a type export cannot read.
    """
    have = bag.topics
    if topics:
        colour, depth, info = topics
        missing = [t for t in (colour, depth, info) if t not in have]
        if missing:
            raise BagError(f"{bag.path}: no topic {', '.join(missing)}; {describe_topics(have)}")
        if mode == 'auto':
            mode = 'captured' if '/captured/' in colour else 'continuous'
    else:
        found = None
        for m in (('captured', 'continuous') if mode == 'auto' else (mode,)):
            exact = DEFAULT_TOPICS[m]
            if exact[0] in have and exact[1] in have:
                found = (m, exact)
                break
            cands = [[t for t in have if t.endswith(sfx)] for sfx in _SUFFIXES[m]]
            if cands[0] and cands[1]:
                found = (m, tuple(sorted(c)[0] if c else None for c in cands))
                break
        if found is None:
            wanted = ' or '.join(f'{DEFAULT_TOPICS[m][0]} + {DEFAULT_TOPICS[m][1]}'
                                 for m in (('captured',
                                            'continuous') if mode == 'auto' else (mode,)))
            raise BagError(f'{bag.path}: no colour and depth topics found (looked for {wanted}); '
                           f'{describe_topics(have)}; '
                           'name them with --topics COLOUR DEPTH CAMERA_INFO')
        mode, (colour, depth, info) = found
        if info is None or info not in have:
            alt = [t for t in have if t.endswith('/camera_info') and have[t].msgtype == INFO_TYPE]
            info = sorted(alt)[0] if alt else None
    for t in (colour, depth):
        if have[t].msgtype not in IMAGE_TYPES:
            raise BagError(f'{bag.path}: topic {t} has type {have[t].msgtype}; export reads '
                           'sensor_msgs/msg/Image '
                           '(and CompressedImage for colour)')
    if have[depth].msgtype != 'sensor_msgs/msg/Image':
        raise BagError(f'{bag.path}: depth topic {depth} is {have[depth].msgtype}; export needs '
                       'raw depth '
                       '(sensor_msgs/msg/Image, 16UC1 or 32FC1); record the uncompressed topic')
    if info is not None and have[info].msgtype != INFO_TYPE:
        raise BagError(f'{bag.path}: topic {info} has type {have[info].msgtype}, not {INFO_TYPE}')
    return mode, (colour, depth, info)


# ------------------------------------------------------------------------------- frames
@dataclass
class Capture:
    """One frame that counts: a captured frame, or a settled (averaged) frame of a recording."""

    stamp_ns: int
    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) uint16 in depth_scale units
    depth_m: np.ndarray  # (H, W) float32 metres
    intrinsics: CameraIntrinsics
    frames: int = 1  # frames averaged


def average_depth(frames_m) -> np.ndarray:
    """Per-pixel mean of the valid values of several depth frames (metres, 0 = invalid).

    A pixel stays valid only where at least half of the frames saw it.
    """
    stack = np.stack([np.asarray(f, np.float32) for f in frames_m])
    valid = stack > 0
    n = valid.sum(axis=0)
    total = stack.sum(axis=0, dtype=np.float32)
    out = np.where(n * 2 >= len(stack), total / np.maximum(n, 1), np.float32(0))
    return out.astype(np.float32)


class Decoder:
    """Turns raw messages of one bag into images, with errors naming the topic."""

    def __init__(self, bag: BagSource, topics, options: ExportOptions):
        self.bag = bag
        self.colour, self.depth, self.info = topics
        self.types = {t: bag.topics[t].msgtype for t in topics if t}
        self.options = options

    def rgb(self, raw: bytes) -> np.ndarray:
        msg = self.bag.deserialize(raw, self.types[self.colour])
        try:
            if self.types[self.colour].endswith('CompressedImage'):
                import cv2

                data = bytes(msg.data)
                size = encoded_size(data)
                if size is None:
                    raise ValueError(f'CompressedImage.data: not a PNG or JPEG ({msg.format!r})')
                check_pixels(*size, 'CompressedImage')
                img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                if img is None or img.shape[:2] != size[::-1]:
                    raise ValueError(f'CompressedImage.data: cannot decode ({msg.format!r})')
                return img[:, :, ::-1].copy()
            return to_rgb8(image_to_numpy(msg), msg.encoding)
        except ValueError as exc:
            raise BagError(f'{self.bag.path}: topic {self.colour}: {exc}') from None

    def depth_units(self, raw: bytes) -> tuple[np.ndarray, str]:
        msg = self.bag.deserialize(raw, self.types[self.depth])
        try:
            arr = image_to_numpy(msg)
            if msg.encoding not in ('16UC1', 'mono16', '32FC1'):
                raise ValueError(
                    f'Image.encoding: {msg.encoding!r} is not a depth encoding (16UC1, mono16, '
                    '32FC1)')
        except ValueError as exc:
            raise BagError(f'{self.bag.path}: topic {self.depth}: {exc}') from None
        return arr, msg.encoding

    def to_metres(self, arr: np.ndarray, encoding: str) -> np.ndarray:
        return depth_to_metres(arr, encoding, depth_scale=self.options.depth_scale)

    def to_units(self, arr: np.ndarray, encoding: str) -> np.ndarray:
        if encoding == '32FC1':
            return metres_to_depth_units(depth_to_metres(arr, encoding),
                                         depth_scale=self.options.depth_scale)
        return arr

    def intrinsics(self, raw: bytes) -> CameraIntrinsics:
        msg = self.bag.deserialize(raw, INFO_TYPE)
        try:
            return camera_info_to_intrinsics(msg)
        except ValueError as exc:
            raise BagError(f'{self.bag.path}: topic {self.info}: {exc}') from None


def _stamp(raw: bytes, fallback_ns: int) -> int:
    s = cdr_stamp_ns(raw)
    return s if s else fallback_ns


def _first_message(bag: BagSource, topic: str | None) -> bytes | None:
    if not topic:
        return None
    for _, _, raw in bag.messages([topic]):
        return raw
    return None


def _frames(bag: BagSource, dec: Decoder, trigger: str | None, stats: dict):
    """Paired frames ``(stamp_ns, rgb_raw, depth_raw, info_raw)`` and trigger times, in order."""
    pairer = StampPairer(max_dt=dec.options.max_pair_dt, keep=8)
    # realsense2_camera stamps an image and its camera_info alike and publishes them in either
    # order, and a recording can start between them: frames before the first camera_info use
    # it (the camera is fixed); later ones the newest before them
    info_raw = _first_message(bag, dec.info)
    names = [t for t in (dec.colour, dec.depth, dec.info, trigger) if t]
    for topic, ts, raw in bag.messages(names):
        if topic == dec.info:
            info_raw = raw
        elif topic == trigger:
            yield ('trigger', ts)
        elif topic == dec.colour:
            pair = pairer.add('colour', _stamp(raw, ts) * 1e-9, raw)
            if pair:
                stats['frames'] += 1
                yield ('frame', round(pair['colour'][0] * 1e9), pair['colour'][1],
                       pair['depth'][1], info_raw)
        elif topic == dec.depth:
            stats['depth_msgs'] += 1
            if stats['depth_msgs'] % 16 == 0 and stats.get('bar') is not None:
                stats['bar'].update(16)
            pair = pairer.add('depth', _stamp(raw, ts) * 1e-9, raw)
            if pair:
                stats['frames'] += 1
                yield ('frame', round(pair['depth'][0] * 1e9), pair['colour'][1],
                       pair['depth'][1], info_raw)


class _Intrinsics:
    """The camera of a bag: from its camera_info messages (or the fallback), checked per frame."""

    def __init__(self, dec: Decoder, fallback: CameraIntrinsics | None):
        self.dec = dec
        self.fallback = fallback
        self._raw = None
        self.current: CameraIntrinsics | None = None

    def get(self, info_raw: bytes | None) -> CameraIntrinsics:
        if info_raw is None:
            if self.fallback is None:
                where = (f'no camera_info message on {self.dec.info}' if self.dec.info
                         else 'no camera_info topic')
                raise BagError(f'{self.dec.bag.path}: {where}; record the camera_info topic or '
                               'pass --camera-info camera_info.yaml')
            return self.fallback
        if info_raw[12:] != (self._raw or b'')[12:]:  # ignore the stamp
            self._raw = info_raw
            self.current = self.dec.intrinsics(info_raw)
        return self.current

    @staticmethod
    def check(bag_path, rgb: np.ndarray, depth: np.ndarray, intr: CameraIntrinsics, colour: str,
              depth_topic: str):
        (h, w), (dh, dw) = rgb.shape[:2], depth.shape[:2]
        if (h, w) != (dh, dw):
            raise BagError(f'{bag_path}: colour ({colour}) is {w}x{h} but depth ({depth_topic}) '
                           f'is {dw}x{dh}; '
                           'record the depth aligned to colour (realsense2_camera '
                           'align_depth.enable:=true)')
        if (w, h) != (intr.width, intr.height):
            raise BagError(
                f'{bag_path}: images are {w}x{h} but camera_info says {intr.width}x{intr.height}')


def captures(bag: BagSource, mode: str, dec: Decoder, trigger: str | None, stats: dict):
    """Yield the frames that count, in order (see the module docstring)."""
    opts = dec.options
    cams = _Intrinsics(dec, opts.camera_info)
    if mode == 'captured':
        for item in _frames(bag, dec, None, stats):
            _, stamp, rgb_raw, depth_raw, info_raw = item
            intr = cams.get(info_raw)
            rgb = dec.rgb(rgb_raw)
            arr, enc = dec.depth_units(depth_raw)
            _Intrinsics.check(bag.path, rgb, arr, intr, dec.colour, dec.depth)
            yield Capture(stamp, rgb, dec.to_units(arr, enc), dec.to_metres(arr, enc), intr)
        return
    settle = SettleDetector(settle_s=opts.settle_s, capture_first=True)
    recent: deque = deque(maxlen=max(1, opts.average))
    pending_trigger = False
    camera = None
    for item in _frames(bag, dec, trigger, stats):
        if item[0] == 'trigger':
            pending_trigger = True
            continue
        _, stamp, rgb_raw, depth_raw, info_raw = item
        intr = cams.get(info_raw)
        if camera is not None and not same_camera(camera, intr):
            # a new calibration: frames before it are not averaged with frames after
            recent.clear()
        camera = intr
        arr, enc = dec.depth_units(depth_raw)
        depth_m = dec.to_metres(arr, enc)
        if arr.shape != (intr.height, intr.width):
            raise BagError(f'{bag.path}: depth ({dec.depth}) is {arr.shape[1]}x{arr.shape[0]} but '
                           'camera_info says '
                           f'{intr.width}x{intr.height}')
        if trigger:
            fire = settle.settled(stamp * 1e-9, depth_m) and pending_trigger
        else:
            fire = settle.update(stamp * 1e-9, depth_m)
        if settle.still_since is None:
            recent.clear()  # moving: frames before this are of another scene
        recent.append((stamp, rgb_raw, depth_m))
        if not fire:
            continue
        pending_trigger = False
        rgb = dec.rgb(rgb_raw)
        _Intrinsics.check(bag.path, rgb, depth_m, intr, dec.colour, dec.depth)
        avg = average_depth([d for _, _, d in recent]) if len(recent) > 1 else depth_m
        settle.captured(depth_m)
        yield Capture(stamp, rgb, metres_to_depth_units(avg, depth_scale=opts.depth_scale), avg,
                      intr, len(recent))
