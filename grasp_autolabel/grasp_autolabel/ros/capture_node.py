"""capture_node: one RGB-D frame into the session folder after each pick.

Subscribes (sensor-data QoS) to colour, aligned depth and camera_info (realsense2_camera's ROS 2
names with ``align_depth.enable:=true`` by default) and pairs colour and depth by stamp. A
capture is triggered by ``~/capture`` (std_srvs/Trigger: the operator's button, the PLC) and,
with ``auto_capture``, when the scene has changed since the last capture and then stayed still
for ``settle_s`` (the arm has left). Each capture is written to ``session_dir`` whole or not at
all (numbered on across restarts, its stamp in ``stamps.csv``) and, once on disk, published
reliable and transient-local (the last 10 kept for a node that restarts) on ``~/captured/rgb``,
``~/captured/depth`` and ``~/captured/camera_info``. A write that fails (a full disk, a folder
it may not write) turns ``/diagnostics`` ERROR with the reason and the path until a capture
succeeds again; below ``min_free_mb`` free it WARNs.

Bad input (wrong encodings, colour and depth of different sizes, missing camera_info, empty
data, stamps going backwards, depth with no valid pixel) is logged once per kind, counted on
``/diagnostics`` and dropped; the node never stops for it.
"""
from __future__ import annotations

import copy
from pathlib import Path
import shutil
import sys
import time

from grasp_autolabel.capture import SessionWriter, SettleDetector
from grasp_autolabel.core.session import Session, SessionError
from grasp_autolabel.core.stamps import stamp_ns, stamp_s, StampPairer
from grasp_autolabel.ros.convert import (camera_info_to_intrinsics, depth_to_metres,
                                         image_to_numpy, metres_to_depth_units, to_rgb8)
from grasp_autolabel.ros.health import ERROR, Health, OK, WARN
from grasp_autolabel.ros.params import declare_parameters, Param
from grasp_autolabel.ros.qos import CAPTURED, SENSOR
from grasp_autolabel.ros.runner import rejoin, run_node
from grasp_autolabel.ros.watch import StreamWatch
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

PARAMS = [
    Param('color_topic', '/camera/camera/color/image_raw',
          'colour image topic (rgb8, bgr8, rgba8, bgra8, mono8)'),
    Param('depth_topic', '/camera/camera/aligned_depth_to_color/image_raw',
          'depth aligned to colour (16UC1/mono16 in depth_scale units, or 32FC1 metres)'),
    Param('camera_info_topic', '/camera/camera/color/camera_info',
          'camera_info of the colour (= aligned depth) image'),
    Param('session_dir', '~/grasp_autolabel/session',
          'folder of the capture session (created; continued if it holds frames); relative: to '
          'the working directory'),
    Param('depth_scale', 0.001, 'metres per unit of integer depth (RealSense: 0.001)', min=1e-6,
          max=1.0),
    Param('max_pair_dt', 0.02,
          'largest stamp difference between a colour and a depth frame to pair them, s', min=0.0,
          max=1.0),
    Param('auto_capture', False, 'capture by itself when the scene changed and then stayed still'),
    Param('settle_s', 1.0, 'auto_capture: seconds the scene must stay still', min=0.0, max=60.0),
    Param('change_m', 0.03, 'auto_capture: depth change that counts, metres', min=0.001, max=1.0),
    Param('changed_fraction', 0.005,
          'auto_capture: share of the image that must differ from the last capture', min=0.0,
          max=1.0),
    Param('still_fraction', 0.002,
          'auto_capture: share of the image that may move between frames while still', min=0.0,
          max=1.0),
    Param('diagnostics_period_s', 1.0, 'period of /diagnostics, s', min=0.1, max=60.0),
    Param('min_free_mb', 500.0,
          'free space on the session disk below which /diagnostics warns (checked each capture), '
          'MB', min=0.0, max=1e9),
    Param('time_jump_s', 2.0,
          'a stamp this far behind the last one is a jump back in time (a replay restarted, a '
          'clock reset): the last capture and the pairing start over, s', min=0.0, max=1e6),
    Param('input_timeout_s', 3.0,
          'an input silent this long is reported on /diagnostics (ERROR) and subscribed afresh',
          min=0.1, max=600.0),
    Param('rejoin_after_s', 30.0,
          'no publisher in sight on any input this long: start again as a fresh DDS participant '
          '(doubling while nothing is heard); 0: never', min=0.0, max=86400.0),
]

BAD_INPUT = ('encoding', 'size_mismatch', 'no_camera_info', 'bad_camera_info', 'empty',
             'stamp_backwards',
             'no_valid_depth', 'malformed')


class CaptureNode(Node):
    """Captures one still frame per pick (button, service or auto trigger) into a session.

    Topics, parameters and diagnostics: the module's docstring and the README.
    """

    def __init__(self, **kwargs):
        super().__init__('capture_node', **kwargs)
        self.started = time.monotonic()
        self.p = declare_parameters(self, PARAMS)
        self.session_dir = Path(self.p['session_dir']).expanduser().absolute()
        self.writer: SessionWriter | None = None
        self.info_msg: CameraInfo | None = None
        self.intrinsics = None
        self.pairer = StampPairer(max_dt=self.p['max_pair_dt'])
        self.latest = None  # (colour msg, depth msg, depth_m)
        self.captured_stamp: float | None = None  # stamp of the last frame captured
        # an auto capture fell due before the first camera_info: taken when it arrives (a
        # camera publishes each image and its camera_info in either order)
        self.waiting_for_info = False
        self.last_stamp = {'color': -1.0, 'depth': -1.0}
        self.write_error: str | None = None  # the last failed write, until one succeeds
        self.low_space: str | None = None
        # auto capture takes the first still scene too (the pile before the first pick): with
        # the button alone nobody would press it for the untouched pile
        self.settle = SettleDetector(change_m=self.p['change_m'],
                                     changed_fraction=self.p['changed_fraction'],
                                     still_fraction=self.p['still_fraction'],
                                     settle_s=self.p['settle_s'],
                                     capture_first=True)
        self._continue_session()
        self.health = Health(self, 'capture_node', self.p['color_topic'])
        self.counts, self.bad = self.health.counts, self.health.bad
        self.inputs = StreamWatch(self, self.p['input_timeout_s'],
                                  rejoin_after_s=self.p['rejoin_after_s'],
                                  on_rejoin=lambda why: rejoin(self, why))
        self.inputs.subscribe('color', Image, self.p['color_topic'], self.on_color, SENSOR)
        self.inputs.subscribe('depth', Image, self.p['depth_topic'], self.on_depth, SENSOR)
        self.inputs.subscribe('camera_info', CameraInfo, self.p['camera_info_topic'], self.on_info,
                              SENSOR)
        self.pub_rgb = self.create_publisher(Image, '~/captured/rgb', CAPTURED)
        self.pub_depth = self.create_publisher(Image, '~/captured/depth', CAPTURED)
        self.pub_info = self.create_publisher(CameraInfo, '~/captured/camera_info', CAPTURED)
        self.create_service(Trigger, '~/capture', self.on_capture)
        self.create_timer(self.p['diagnostics_period_s'], self.publish_diagnostics)
        self.get_logger().info(f'capturing into {self.session_dir}; colour '
                               f"{self.p['color_topic']}, depth "
                               f"{self.p['depth_topic']}; auto_capture={self.p['auto_capture']}")

    def _continue_session(self) -> None:
        """Continue a session that already holds frames (a restart).

        Auto capture compares with its last frame, so an unchanged scene is not captured twice.
        """
        if not (self.session_dir / 'camera_info.yaml').exists():
            return
        try:
            session = Session.open(self.session_dir)
            last = session.read_depth_m(session.frames[-1])
        except (SessionError, OSError, ValueError):
            return  # what the first capture will repair (a crash's half frame) or report
        self.settle.captured(last)
        self.get_logger().info(f'continuing {self.session_dir} after frame {session.frames[-1]}')

    # ---------------------------------------------------------------- inputs
    def on_info(self, msg: CameraInfo) -> None:
        try:
            intr = camera_info_to_intrinsics(msg)
        except ValueError as exc:
            self.bad('bad_camera_info', f'camera_info: {exc}')
            return
        self.info_msg, self.intrinsics = msg, intr
        if self.waiting_for_info:
            self.waiting_for_info = False
            ok, message = self.capture('auto')
            if not ok:
                self.get_logger().warning(f'auto capture failed: {message}')

    def _check_order(self, which: str, msg) -> bool:
        t = stamp_s(msg.header)
        last = self.last_stamp[which]
        if t < last - self.p['time_jump_s']:
            # a replay restarted or a clock reset: what was captured before is no measure of
            # what is new, and frames pair afresh
            self.counts['time_jumps'] += 1
            self.get_logger().warning(f'{which} stamps jumped back {last - t:.1f} s (a replay '
                                      'restarted? a clock reset?): capturing starts over')
            self.pairer = StampPairer(max_dt=self.p['max_pair_dt'])
            self.latest, self.captured_stamp = None, None
            self.settle.still_since = None  # a still period is measured in the new time
            self.last_stamp = {'color': -1.0, 'depth': -1.0}
        elif t < last:
            self.bad('stamp_backwards',
                     f'{which} stamp went backwards ({t:.3f} < {last:.3f}); frame dropped')
            return False
        self.last_stamp[which] = t
        return True

    def on_color(self, msg: Image) -> None:
        self.counts['color_frames'] += 1
        if not msg.data:
            self.bad('empty', 'colour image with no data')
            return
        if msg.encoding not in ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8'):
            self.bad('encoding',
                     f'colour encoding {msg.encoding!r} is not supported (rgb8, bgr8, rgba8, '
                     'bgra8, mono8)')
            return
        if self._check_order('color', msg):
            self._pair(self.pairer.add('colour', stamp_s(msg.header), msg))

    def on_depth(self, msg: Image) -> None:
        self.counts['depth_frames'] += 1
        if not msg.data:
            self.bad('empty', 'depth image with no data')
            return
        if msg.encoding not in ('16UC1', 'mono16', '32FC1'):
            self.bad('encoding',
                     f'depth encoding {msg.encoding!r} is not supported (16UC1, mono16, 32FC1)')
            return
        if self._check_order('depth', msg):
            self._pair(self.pairer.add('depth', stamp_s(msg.header), msg))

    def _pair(self, pair) -> None:
        if pair is None:
            return
        (_, color), (t, depth) = pair['colour'], pair['depth']
        if self.latest is not None and t <= stamp_s(self.latest[1].header):
            return  # a late frame paired after a newer one: keep the newest
        if (color.width, color.height) != (depth.width, depth.height):
            self.bad(
                'size_mismatch',
                f'colour {color.width}x{color.height} and depth {depth.width}x{depth.height} '
                'differ: is align_depth enabled?',
            )
            return
        try:
            d = image_to_numpy(depth)
        except ValueError as exc:
            self.bad('malformed', f'depth: {exc}')
            return
        depth_m = depth_to_metres(d, depth.encoding, depth_scale=self.p['depth_scale'])
        if not np.any(depth_m[::4, ::4] > 0):
            self.bad('no_valid_depth',
                     'depth frame without a single valid pixel (covered lens? too close?)')
            return
        self.latest = (color, depth, depth_m)
        self.counts['pairs'] += 1
        if self.counts['pairs'] == 1:
            self.get_logger().info(
                f'first colour+depth pair, {time.monotonic() - self.started:.1f} s after start')
        if self.p['auto_capture'] and self.settle.update(t, depth_m):
            ok, message = self.capture('auto')
            if not ok:
                self.get_logger().warning(f'auto capture failed: {message}')

    # ---------------------------------------------------------------- capture
    def _no_info_yet(self, why: str) -> tuple[bool, str]:
        """Return the answer to a capture before any camera_info: an auto one waits for it."""
        message = f"no camera_info received yet on {self.p['camera_info_topic']}"
        if why != 'auto':
            return False, message
        if not self.waiting_for_info:
            self.get_logger().info(f'{message}: capturing when it arrives')
        self.waiting_for_info = True
        return True, f'{message}: capturing when it arrives'

    def capture(self, why: str) -> tuple[bool, str]:
        if self.latest is None:
            return (False,
                    'no colour+depth pair received yet (check the topics and that depth is '
                    'aligned to colour)')
        if self.info_msg is None:
            return self._no_info_yet(why)
        color, depth, depth_m = self.latest
        if self.captured_stamp is not None and stamp_s(color.header) <= self.captured_stamp:
            return False, 'no new frame since the last capture (is the camera still publishing?)'
        if (color.width, color.height) != (self.intrinsics.width, self.intrinsics.height):
            self.bad(
                'size_mismatch',
                f'camera_info is {self.intrinsics.width}x{self.intrinsics.height} but the '
                'images '
                f'are {color.width}x{color.height}',
            )
            return False, 'camera_info does not match the image size'
        try:
            rgb = to_rgb8(image_to_numpy(color), color.encoding)
        except ValueError as exc:
            self.bad('malformed', f'colour: {exc}')
            return False, f'colour image is malformed: {exc}'
        raw = image_to_numpy(depth)
        depth_u16 = raw if raw.dtype == np.uint16 else metres_to_depth_units(
            depth_m, depth_scale=self.p['depth_scale'])
        self.check_free_space()
        try:
            if self.writer is None:  # opening the session checks its camera
                self.writer = SessionWriter(self.session_dir, self.intrinsics,
                                            self.p['depth_scale'])
                if self.writer.removed:
                    self.get_logger().warning(
                        f'removed {len(self.writer.removed)} half-written file(s) left by a crash')
            k = self.writer.write(rgb, depth_u16, stamp_ns(color.header.stamp))
        except (SessionError, ValueError, OSError) as exc:
            return False, self.write_failed(exc)
        self.write_ok()
        # published once the frame is on disk: a label is never of a frame the session lacks
        self.settle.captured(depth_m)
        self.captured_stamp = stamp_s(color.header)
        self.pub_rgb.publish(color)
        self.pub_depth.publish(depth)
        info = copy.deepcopy(self.info_msg)
        info.header = color.header  # the captured frame's stamp and frame
        self.pub_info.publish(info)
        self.counts[f'captures_{why}'] += 1
        self.get_logger().info(f'captured frame {k} ({why})')
        return True, f'captured frame {k}'

    def write_failed(self, exc: Exception) -> str:
        """Count a failed capture, make it the node's ERROR and log it once; return the reason."""
        self.counts['capture_errors'] += 1
        where = getattr(exc, 'filename', None) or self.session_dir
        reason = f'could not write the captured frame to {where}: ' + (
            exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc))
        if reason != self.write_error:
            self.get_logger().error(f'{reason} (nothing was captured or published)')
        self.write_error = reason
        return reason

    def write_ok(self) -> None:
        if self.write_error is not None:
            self.get_logger().info(f'writing to {self.session_dir} works again')
        self.write_error = None

    def check_free_space(self) -> None:
        """WARN (on /diagnostics, logged once) while the session's disk has < min_free_mb free."""
        folder = self.session_dir
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            free_mb = shutil.disk_usage(folder).free / 2**20
        except OSError:
            return
        low = free_mb < self.p['min_free_mb']
        if low and self.low_space is None:
            self.get_logger().warning(f'only {free_mb:.0f} MB free on {folder} (min_free_mb '
                                      f"{self.p['min_free_mb']:g})")
        self.low_space = f'{free_mb:.0f} MB free on {folder}' if low else None

    def on_capture(self, request, response):
        response.success, response.message = self.capture('service')
        return response

    def publish_diagnostics(self) -> None:
        dropped = sum(v for k, v in self.counts.items() if k.startswith('dropped_'))
        errors = self.inputs.check() + ([self.write_error] if self.write_error else [])
        warnings = ([f'{dropped} input message(s) dropped'] if dropped else []) + (
            [f'low disk space: {self.low_space}'] if self.low_space else [])
        level = ERROR if errors else WARN if warnings else OK
        message = '; '.join(errors + warnings) or 'ok'
        keys = ['color_frames', 'depth_frames', 'pairs', 'captures_service', 'captures_auto',
                'capture_errors', 'time_jumps']
        keys += [f'dropped_{k}' for k in BAD_INPUT]
        values = {k: self.counts.get(k, 0) for k in keys}
        values['next_frame'] = self.writer.next_index if self.writer else ''
        self.health.publish(level, message, {**values, **self.inputs.values()})


def main(args=None) -> int:
    return run_node(CaptureNode, 'capture_node', args)


if __name__ == '__main__':
    sys.exit(main())
