"""inference_node's camera inputs: frames taken when the worker is free, paired and decoded.

The colour, depth and camera_info subscriptions belong to a :class:`FrameTaker` (no executor
callback per message); :meth:`CameraInputs.newest` waits for and returns the newest colour frame
(older ones are counted as ``dropped_stale``), :meth:`CameraInputs.prepare` pairs it with the
depth frame of the nearest stamp and decodes both, counting every degraded input by kind.
"""
from __future__ import annotations

import threading
import time

from grasp_autolabel.core.stamps import stamp_ns, StampPairer
from grasp_autolabel.ros.convert import (camera_info_to_intrinsics, depth_to_metres,
                                         image_to_numpy, to_rgb8)
from grasp_autolabel.ros.frame_taker import FrameTaker
from grasp_autolabel.ros.qos import SENSOR
from grasp_autolabel.ros.runner import rejoin
from grasp_autolabel.ros.watch import StreamWatch
import numpy as np
from sensor_msgs.msg import CameraInfo, Image

__all__ = ['CameraInputs']

STREAMS = ('color', 'depth', 'camera_info')


class CameraInputs:
    """The three camera streams of a node, taken on demand by its worker thread.

    Parameters
    ----------
    node : rclpy.node.Node
        Its ``p`` (parameters: the topics, ``input_timeout_s``, ``max_pair_dt``,
        ``depth_scale``) and ``health`` (counts and once-per-kind warnings).
    """

    def __init__(self, node):
        self.node, self.p, self.health = node, node.p, node.health
        self.counts, self.bad = self.health.counts, self.health.bad
        self.taker = FrameTaker(node, lambda helper: StreamWatch(
            helper, self.p['input_timeout_s'], rejoin_after_s=self.p['rejoin_after_s'],
            on_rejoin=lambda why: rejoin(node, why)))
        self.watch = self.taker.watch
        self.taker.subscribe('color', Image, self.p['color_topic'], SENSOR)
        self.taker.subscribe('depth', Image, self.p['depth_topic'], SENSOR)
        self.taker.subscribe('camera_info', CameraInfo, self.p['camera_info_topic'], SENSOR)
        # depth frames waiting for their colour frame (stamps in ns)
        self.depth_buf = StampPairer(max_dt=self.p['max_pair_dt'] * 1e9, keep=8)
        self.info = None
        self.seq = 0  # colour frames received; each result records its frame's number
        self.lock = threading.Lock()

    def frame_seq(self) -> int:
        """Return the number of the newest colour frame received."""
        with self.lock:
            return self.seq

    def _take_depth(self) -> None:
        for msg, _ in self.taker.take('depth'):
            self.depth_buf.add('depth', stamp_ns(msg.header.stamp), msg)

    def newest(self, timeout_s: float):
        """Return ``(colour msg, arrived monotonic s, frame number)`` of the newest frame, or None.

        Waits up to ``timeout_s`` for one; takes every waiting depth and camera_info message.
        """
        self.taker.wait(STREAMS, timeout_s)
        self._take_depth()
        infos = self.taker.take('camera_info')
        if infos:
            self.info = infos[-1][0]
        frames = self.taker.take('color')
        if not frames:
            return None
        with self.lock:
            # several waiting (the worker was busy): only the newest counts
            self.counts['dropped_stale'] += len(frames) - 1
            self.counts['frames'] += len(frames)
            self.seq += len(frames)
            msg, arrived_ns = frames[-1]
            return msg, arrived_ns * 1e-9, self.seq

    def depth_for(self, t_ns: int, running=lambda: True):
        """Return the depth frame nearest in stamp, waiting briefly for it.

        Depth often arrives just after its colour frame.
        """
        deadline = time.monotonic() + 0.05
        while True:
            best = self.depth_buf.take('depth', t_ns)
            if best is not None:
                return best[1]
            left = deadline - time.monotonic()
            if left <= 0 or not running():
                return None
            if self.taker.wait(['depth'], left):
                self._take_depth()

    def prepare(self, msg: Image, predictor, running=lambda: True):
        """Return ``(rgb, depth_m or None, intrinsics or None)`` of a colour frame.

        None when the model cannot run on it (each degraded or missing input counted by kind).
        """
        try:
            rgb = to_rgb8(image_to_numpy(msg), msg.encoding)
        except ValueError as exc:
            self.bad('bad_image', f'colour frame: {exc}')
            return None
        h, w = rgb.shape[:2]
        depth_m = self._depth_m(stamp_ns(msg.header.stamp), w, h, running)
        intr = None
        if self.info is None:
            self.bad('no_camera_info', 'no camera_info yet: 2-D grasps only, poses invalid')
        else:
            try:
                intr = camera_info_to_intrinsics(self.info)
            except ValueError as exc:
                self.bad('bad_camera_info', f'camera_info: {exc}')
            if intr is not None and (intr.width, intr.height) != (w, h):
                self.bad('size_mismatch',
                         f"camera_info {intr.width}x{intr.height} is not the colour's {w}x{h}")
                intr = None
        try:
            predictor.check_size(w, h, where='colour frame')
        except ValueError as exc:
            self.bad('unexpected_input', str(exc))
            return None
        if depth_m is None and predictor.uses_depth:
            self.counts['skipped_no_depth'] += 1  # an RGB-D model cannot run on colour alone
            return None
        if depth_m is not None and not np.any(np.isfinite(depth_m) & (depth_m > 0)):
            # a depth frame that says nothing (all 0, NaN or inf): a degraded input, as the
            # capture node treats it; an RGB-D model would only invent grasps from it
            self.bad('no_valid_depth', 'depth frame without a valid pixel: '
                     + ('the RGB-D model does not run on it' if predictor.uses_depth
                        else '2-D grasps only, poses invalid'))
            if predictor.uses_depth:
                return None
            depth_m = None
        return rgb, depth_m, intr

    def _depth_m(self, t_ns: int, w: int, h: int, running):
        """Return the depth frame paired with a colour frame, in metres, or None (counted)."""
        dmsg = self.depth_for(t_ns, running)
        if dmsg is None:
            self.bad('no_depth',
                     'no depth frame with a matching stamp: 2-D grasps only, poses invalid')
            return None
        try:
            depth_m = depth_to_metres(image_to_numpy(dmsg), dmsg.encoding,
                                      depth_scale=self.p['depth_scale'])
        except ValueError as exc:
            self.bad('bad_depth', f'depth frame: {exc}')
            return None
        if depth_m.shape != (h, w):
            self.bad('size_mismatch',
                     f"depth {depth_m.shape[1]}x{depth_m.shape[0]} is not the colour's {w}x{h}")
            return None
        return depth_m

    def check(self) -> list[str]:
        """One line per silent stream (the watch's check, under the taker's lock)."""
        return self.taker.check()

    def destroy(self) -> None:
        self.taker.destroy()
