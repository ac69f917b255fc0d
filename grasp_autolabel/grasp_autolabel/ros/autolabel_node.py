"""autolabel_node: label each new captured frame against the previous one.

Subscribes (reliable, transient-local: so it works live and on a replayed bag of the capture
node's topics) to the captured colour, depth and camera_info. For each new frame, the pick
between the previous frame and this one goes through :func:`annotate.annotate_step`; the node
publishes

* ``~/grasps`` (grasp_autolabel_msgs/GraspRectArray, reliable): header = the earlier frame's
  (the labels are drawn on it), sorted by score, with 3-D poses; empty when the gate rejected
  the step;
* ``~/markers`` (visualization_msgs/MarkerArray): the rectangles in 3-D for RViz;
* ``~/overlay`` (sensor_msgs/Image rgb8): the earlier frame with mask, spine and rectangles;
* ``/diagnostics``: steps, accepted, rejected by reason;

and appends the step to the dataset in ``dataset_dir`` (if set), exactly once across restarts
(``dataset/live.py``): a restart continues its source and labels what it missed, from the captured
frames the capture node keeps for late subscribers and, with ``session_dir`` (the capture
node's, on this PC), from the session's files, numbered as the session numbers them. A write
that fails (a full disk) turns ``/diagnostics`` ERROR with the reason and the path; the step is
written when the disk takes it again. Every annotation setting of
:class:`annotate.AnnotateConfig` is a parameter of the same name.
"""
from __future__ import annotations

from collections import deque
from dataclasses import fields
import sys
import time

from grasp_autolabel import __version__
from grasp_autolabel.annotate import annotate_step, AnnotateConfig, Reason
from grasp_autolabel.annotate.viz import draw_label
from grasp_autolabel.core.errors import DatasetError, OutputError
from grasp_autolabel.core.session import SessionError
from grasp_autolabel.core.stamps import stamp_ns, StampPairer
from grasp_autolabel.dataset.live import Frame, LiveDataset, SessionView
from grasp_autolabel.ros.convert import (camera_info_to_intrinsics, depth_to_metres,
                                         image_to_numpy, metres_to_depth_units, numpy_to_image,
                                         to_rgb8)
from grasp_autolabel.ros.health import ERROR, Health, OK, WARN
from grasp_autolabel.ros.messages import grasp_markers, grasps_to_msg, SOURCE_ANNOTATION
from grasp_autolabel.ros.params import declare_parameters, Param, ParameterError
from grasp_autolabel.ros.qos import CAPTURED, CAPTURED_KEEP, RELIABLE
from grasp_autolabel.ros.runner import run_node
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

PARAMS = [
    Param('color_topic', '/capture_node/captured/rgb', 'captured colour frames'),
    Param('depth_topic', '/capture_node/captured/depth',
          'captured depth frames (aligned to colour)'),
    Param('camera_info_topic', '/capture_node/captured/camera_info',
          'camera_info of the captured frames'),
    Param('dataset_dir', '', 'grasp dataset to append every step to; empty: do not write one'),
    Param('session_dir', '',
          "the capture node's session folder, when on this PC: labels name its frame numbers "
          'and steps missed while this node was down are labelled from its files; empty: the '
          'captured messages alone'),
    Param('depth_scale', 0.001, 'metres per unit of integer depth', min=1e-6, max=1.0),
    Param('diagnostics_period_s', 1.0, 'period of /diagnostics, s', min=0.1, max=60.0),
] + [Param(f.name, f.default, *AnnotateConfig.describe(f.name)) for f in fields(AnnotateConfig)]

MODEL_ID = f'grasp_autolabel {__version__} annotation'
RETRY_S = 1.0  # a failed dataset write is tried again this often
UNWRITTEN_KEEP = 20  # steps kept in memory while the disk refuses them (no session to reread)
CATCH_UP_S = 0.5  # labelling missed steps yields to the executor this often


class AutolabelNode(Node):
    """Labels each captured pick (colour, depth, camera_info) and appends it to a dataset.

    Topics, parameters and diagnostics: the module's docstring and the README.
    """

    def __init__(self, **kwargs):
        super().__init__('autolabel_node', **kwargs)
        self.p = declare_parameters(self, PARAMS)
        try:
            self.config = AnnotateConfig.from_dict({f.name: self.p[f.name] for f in fields(
                AnnotateConfig)}, source='parameters')
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        self.health = Health(self, 'autolabel_node', self.p['color_topic'])
        self.counts, self.bad = self.health.counts, self.health.bad
        self.session = SessionView(self.p['session_dir']) if self.p['session_dir'] else None
        self.live: LiveDataset | None = None
        self.write_error: str | None = None  # the last failed write, until one succeeds
        self.unwritten: deque = deque()  # (step, before, after) the disk refused, oldest first
        self.retried = 0.0
        if self.p['dataset_dir']:
            key = str(self.session.path) if self.session else f"live:{self.p['color_topic']}"
            name = self.session.path.name if self.session else 'live'
            self.live = LiveDataset(self.p['dataset_dir'], self.config, key, name,
                                    self.p['depth_scale'])
            self.open_dataset()
        # a captured frame's three parts carry one stamp
        self.parts = StampPairer(('rgb', 'depth', 'info'), max_dt=0, keep=CAPTURED_KEEP)
        self.previous: Frame | None = None
        self.cache: dict[int, Frame] = {}  # session frames that came as messages, by number
        self.unreadable: set[int] = set()
        self.frame_id = ''
        for part, msg_type in (('rgb', Image), ('depth', Image), ('info', CameraInfo)):
            self.create_subscription(msg_type, self.p[f'{part}_topic'.replace('rgb', 'color')
                                                      .replace('info', 'camera_info')],
                                     lambda m, _p=part: self.on_part(_p, m), CAPTURED)
        self.pub_grasps = self.create_publisher(type(grasps_to_msg(np.zeros((0, 5)))), '~/grasps',
                                                RELIABLE)
        self.pub_markers = self.create_publisher(MarkerArray, '~/markers', RELIABLE)
        self.pub_overlay = self.create_publisher(Image, '~/overlay', RELIABLE)
        self.create_timer(self.p['diagnostics_period_s'], self.publish_diagnostics)
        self.create_timer(0.25, self.tick)
        where = f"appending to {self.p['dataset_dir']}" if self.live else 'not writing a dataset'
        frames = f' (frames of {self.session.path})' if self.session else ''
        self.get_logger().info(f"labelling frames from {self.p['color_topic']}{frames}; {where}")

    def open_dataset(self) -> None:
        """Open the dataset; a disk that refuses is an ERROR retried later, never an exit."""
        try:
            self.live.open()
        except (DatasetError, OutputError) as exc:
            raise ParameterError(f"parameter 'dataset_dir': {exc}") from None
        except OSError as exc:
            self.live.dataset = None
            self.write_failed(exc, self.p['dataset_dir'])
            return
        self.write_ok()
        if self.live.steps:
            self.get_logger().info(f'continuing {self.live.name!r}: {self.live.steps} step(s) '
                                   'labelled already')

    # ---------------------------------------------------------------- inputs
    def on_part(self, part: str, msg) -> None:
        dropped = self.parts.dropped
        frame = self.parts.add(part, stamp_ns(msg.header.stamp), msg)
        if self.parts.dropped > dropped:  # parts that never completed (a lost message)
            self.bad('incomplete',
                     'a captured frame came without its colour, depth or camera_info')
        if frame is not None:
            frame = self.decode(frame['rgb'][1], frame['depth'][1], frame['info'][1])
            if frame is not None:
                self.on_frame(frame)

    def decode(self, rgb_msg: Image, depth_msg: Image, info: CameraInfo) -> Frame | None:
        self.counts['frames'] += 1
        try:
            intr = camera_info_to_intrinsics(info)
            rgb = to_rgb8(image_to_numpy(rgb_msg), rgb_msg.encoding)
            raw = image_to_numpy(depth_msg)
        except ValueError as exc:
            self.bad('malformed', f'captured frame: {exc}')
            return None
        try:
            depth_m = depth_to_metres(raw, depth_msg.encoding, depth_scale=self.p['depth_scale'])
        except ValueError as exc:
            self.bad('encoding', f'depth: {exc}')
            return None
        depth_u16 = raw if raw.dtype == np.uint16 else metres_to_depth_units(
            depth_m, depth_scale=self.p['depth_scale'])
        if rgb.shape[:2] != depth_m.shape or (intr.width,
                                              intr.height) != (depth_m.shape[1], depth_m.shape[0]):
            self.bad('size_mismatch', f'colour {rgb.shape[1]}x{rgb.shape[0]}, depth '
                     f'{depth_m.shape[1]}x{depth_m.shape[0]} and camera_info '
                     f'{intr.width}x{intr.height} differ')
            return None
        self.frame_id = rgb_msg.header.frame_id
        return Frame(stamp_ns(rgb_msg.header.stamp), rgb, depth_u16, depth_m, intr,
                     frame_id=rgb_msg.header.frame_id)

    def on_frame(self, frame: Frame) -> None:
        if self.session is not None and self.live is not None:
            frame.index = self.session.index_of(frame.stamp_ns)
            if frame.index is not None:  # the session's frame: labelled in the session's order
                self.cache[frame.index] = frame
                for k in sorted(self.cache)[:-3]:
                    del self.cache[k]
                self.catch_up()
                return
        previous, self.previous = self.previous, frame
        if self.live is not None and self.live.done(frame):
            self.counts['already_labelled'] += 1
            return
        if previous is None:
            done = self.live.done_stamps if self.live else ()
            if done and frame.stamp_ns > max(done):
                self.bad('lost_steps', 'the frame before this captured frame never came: its '
                         'step cannot be labelled (give session_dir to label it from the '
                         'session)')
            return
        if frame.stamp_ns == previous.stamp_ns:
            self.previous = previous
            self.bad('duplicate', 'the same captured frame arrived twice; ignored')
        elif frame.stamp_ns < previous.stamp_ns:
            self.bad('stamp_backwards',
                     'captured frames went back in time; starting over from this frame')
        elif previous.depth_m.shape != frame.depth_m.shape:
            self.bad('size_mismatch',
                     'the captured frames changed size; starting over from this frame')
        elif not self.unwritten or len(self.unwritten) < UNWRITTEN_KEEP:
            self.label(previous, frame)
        else:
            self.bad('lost_steps', f'{UNWRITTEN_KEEP} steps wait for the disk already: a step '
                     'was not labelled')

    def catch_up(self) -> None:
        """Label the session's steps not in the dataset yet, in order (the disk is the queue)."""
        if self.unwritten or self.live is None or self.live.dataset is None:
            return
        end = time.monotonic() + CATCH_UP_S
        done = self.live.done_frames
        for k in range(1, self.session.count()):
            if k in done or k in self.unreadable:
                continue
            try:
                before = self.cache.get(k - 1) or self.session.read(k - 1, self.frame_id)
                after = self.cache.get(k) or self.session.read(k, self.frame_id)
            except (OSError, SessionError) as exc:
                self.unreadable.add(k)
                self.bad('unreadable_frame', f'session frame {k - 1} or {k}: {exc}')
                continue
            if not self.label(before, after) or time.monotonic() > end:
                return

    def tick(self) -> None:
        """Retry what the disk refused, save dataset.json, label what was missed."""
        if self.live is None:
            return
        now = time.monotonic()
        if now - self.retried < RETRY_S and self.write_error:
            return
        self.retried = now
        if self.live.dataset is None:
            self.open_dataset()
            return
        while self.unwritten:
            step, before, after = self.unwritten[0]
            if not self.write(step, before, after):
                return
            self.unwritten.popleft()
            self.publish(step, before)
        try:
            self.live.save_meta()
        except OSError as exc:
            self.write_failed(exc, self.live.path / 'dataset.json')
            return
        if self.session is not None:
            self.catch_up()

    # ---------------------------------------------------------------- labelling
    def label(self, before: Frame, after: Frame) -> bool:
        """Label one step and publish it once it is in the dataset; False: the disk refused."""
        step = annotate_step(before.depth_m, after.depth_m, before.intr, self.config,
                             before_rgb=before.rgb, after_rgb=after.rgb)
        self.counts['steps'] += 1
        self.counts['accepted' if step.accepted else f'rejected_{step.reason}'] += 1
        if not step.accepted:
            self.get_logger().info(
                f'step rejected: {step.reason} ({step.detail})')
        # (behind steps that wait for the disk: in order, so items follow the picks)
        if self.live is not None and (self.unwritten or not self.write(step, before, after)):
            self.unwritten.append((step, before, after))
            return False
        self.publish(step, before)
        return True

    def write(self, step, before: Frame, after: Frame) -> bool:
        """Durable first: a label anyone received is in the dataset. False: the disk refused."""
        try:
            self.live.write(step, before, after)
        except OSError as exc:
            self.write_failed(exc, self.live.path)
            return False
        self.write_ok()
        return True

    def write_failed(self, exc: OSError, where) -> None:
        self.counts['write_errors'] += 1
        reason = (f'could not write to {getattr(exc, "filename", None) or where}: '
                  f'{exc.strerror or exc}')
        if reason != self.write_error:
            self.get_logger().error(f'{reason} (labels wait until it can be written)')
        self.write_error = reason

    def write_ok(self) -> None:
        if self.write_error is not None:
            self.get_logger().info(f'writing to {self.live.path} works again')
        self.write_error = None

    def publish(self, step, before: Frame) -> None:
        header = Header(frame_id=before.frame_id or self.frame_id)
        header.stamp.sec, header.stamp.nanosec = divmod(before.stamp_ns, 1_000_000_000)
        grasps = step.grasps if step.accepted else np.zeros((0, 5))
        poses = step.poses if step.accepted else []
        self.pub_grasps.publish(grasps_to_msg(grasps,
                                              scores=step.scores if step.accepted else None,
                                              poses=poses, header=header,
                                              source=SOURCE_ANNOTATION, model_id=MODEL_ID))
        self.pub_markers.publish(grasp_markers(header, grasps, poses, before.intr))
        text = (f'{len(step.grasps)} grasps' if step.accepted else f'rejected: {step.reason}')
        overlay = draw_label(before.rgb, mask=step.mask, spine=step.spine, grasps=step.grasps,
                             text=text, accepted=step.accepted)
        self.pub_overlay.publish(numpy_to_image(overlay, 'rgb8', header=header))

    def publish_diagnostics(self) -> None:
        rejected = sum(v for k, v in self.counts.items() if k.startswith('rejected_'))
        dropped = sum(v for k, v in self.counts.items() if k.startswith('dropped_'))
        message = (f"{self.counts['steps']} steps, {self.counts['accepted']} accepted, {rejected} "
                   'rejected' + (f', {dropped} input message(s) dropped' if dropped else ''))
        if self.write_error:
            message = f'{self.write_error}; {len(self.unwritten)} step(s) wait; {message}'
        keys = ['frames', 'steps', 'accepted', 'already_labelled', 'write_errors']
        keys += [f'rejected_{r}' for r in Reason]
        keys += sorted(k for k in self.counts if k.startswith('dropped_'))
        values = {k: self.counts.get(k, 0) for k in keys}
        values['unwritten'] = len(self.unwritten)
        values['labelled_in_dataset'] = self.live.steps if self.live else ''
        level = ERROR if self.write_error else WARN if dropped else OK
        self.health.publish(level, message, values)

    def destroy_node(self):
        # (also called on a node whose __init__ stopped at a bad parameter)
        if getattr(self, 'live', None) is not None:
            self.live.close()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(AutolabelNode, 'autolabel_node', args)


if __name__ == '__main__':
    sys.exit(main())
