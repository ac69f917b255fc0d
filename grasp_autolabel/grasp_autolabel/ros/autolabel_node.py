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

and appends the step to the dataset in ``dataset_dir`` (if set). Every annotation setting of
:class:`annotate.AnnotateConfig` is a parameter of the same name.
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path
import sys

from grasp_autolabel import __version__
from grasp_autolabel.annotate import annotate_step, AnnotateConfig, REASONS
from grasp_autolabel.annotate.viz import draw_label
from grasp_autolabel.capture import StampPairer
from grasp_autolabel.dataset.store import DatasetError, GraspDataset, intrinsics_to_dict
from grasp_autolabel.fsio import OutputError
from grasp_autolabel.jobs.label import label_record
from grasp_autolabel.ros.convert import (camera_info_to_intrinsics, depth_to_metres,
                                         image_to_numpy, metres_to_depth_units, numpy_to_image,
                                         to_rgb8)
from grasp_autolabel.ros.health import Health, OK, stamp_ns, WARN
from grasp_autolabel.ros.messages import grasp_markers, grasps_to_msg, SOURCE_ANNOTATION
from grasp_autolabel.ros.params import declare_parameters, Param, ParameterError
from grasp_autolabel.ros.qos import LATCHED, RELIABLE
from grasp_autolabel.ros.runner import run_node
import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import MarkerArray

PARAMS = [
    Param('color_topic', '/capture_node/captured/rgb', 'captured colour frames'),
    Param('depth_topic', '/capture_node/captured/depth',
          'captured depth frames (aligned to colour)'),
    Param('camera_info_topic', '/capture_node/captured/camera_info',
          'camera_info of the captured frames'),
    Param('dataset_dir', '', 'grasp dataset to append every step to; empty: do not write one'),
    Param('depth_scale', 0.001, 'metres per unit of integer depth', min=1e-6, max=1.0),
    Param('diagnostics_period_s', 1.0, 'period of /diagnostics, s', min=0.1, max=60.0),
] + [Param(f.name, f.default, *AnnotateConfig.describe(f.name)) for f in fields(AnnotateConfig)]

MODEL_ID = f'grasp_autolabel {__version__} annotation'


class AutolabelNode(Node):
    def __init__(self, **kwargs):
        super().__init__('autolabel_node', **kwargs)
        self.p = declare_parameters(self, PARAMS)
        try:
            self.config = AnnotateConfig.from_dict({f.name: self.p[f.name] for f in fields(
                AnnotateConfig)}, source='parameters')
        except ValueError as exc:
            raise ParameterError(str(exc)) from None
        self.dataset: GraspDataset | None = None
        self.source: int | None = None
        self.lock = None  # the dataset's, held while the node runs: one writer at a time
        if self.p['dataset_dir']:
            path = Path(self.p['dataset_dir']).expanduser()
            try:
                self.dataset = GraspDataset.create(path, jaw_width_m=self.config.jaw_width_m,
                                                   settings=self.config.to_dict(), append=True)
                self.lock = self.dataset.lock().__enter__()
            except (DatasetError, OutputError) as exc:
                raise ParameterError(f"parameter 'dataset_dir': {exc}") from None
        # a captured frame's three parts carry one stamp
        self.parts = StampPairer(('rgb', 'depth', 'info'), max_dt=0, keep=10)
        self.previous = None  # (header, rgb, depth_u16, depth_m, intrinsics)
        self.health = Health(self, 'autolabel_node', self.p['color_topic'])
        self.counts, self.bad = self.health.counts, self.health.bad
        self.create_subscription(Image, self.p['color_topic'], lambda m: self.on_part('rgb', m),
                                 LATCHED)
        self.create_subscription(Image, self.p['depth_topic'], lambda m: self.on_part('depth', m),
                                 LATCHED)
        self.create_subscription(CameraInfo, self.p['camera_info_topic'],
                                 lambda m: self.on_part('info', m), LATCHED)
        self.pub_grasps = self.create_publisher(type(grasps_to_msg(np.zeros((0, 5)))), '~/grasps',
                                                RELIABLE)
        self.pub_markers = self.create_publisher(MarkerArray, '~/markers', RELIABLE)
        self.pub_overlay = self.create_publisher(Image, '~/overlay', RELIABLE)
        self.create_timer(self.p['diagnostics_period_s'], self.publish_diagnostics)
        where = f'appending to {self.dataset.path}' if self.dataset else 'not writing a dataset'
        self.get_logger().info(f"labelling frames from {self.p['color_topic']}; {where}")

    # ---------------------------------------------------------------- inputs
    def on_part(self, part: str, msg) -> None:
        dropped = self.parts.dropped
        frame = self.parts.add(part, stamp_ns(msg.header.stamp), msg)
        if self.parts.dropped > dropped:  # parts that never completed (a lost message)
            self.bad('incomplete',
                     'a captured frame came without its colour, depth or camera_info')
        if frame is not None:
            self.on_frame(frame['rgb'][1], frame['depth'][1], frame['info'][1])

    def on_frame(self, rgb_msg: Image, depth_msg: Image, info: CameraInfo) -> None:
        self.counts['frames'] += 1
        try:
            intr = camera_info_to_intrinsics(info)
            rgb = to_rgb8(image_to_numpy(rgb_msg), rgb_msg.encoding)
            raw = image_to_numpy(depth_msg)
        except ValueError as exc:
            self.bad('malformed', f'captured frame: {exc}')
            return
        try:
            depth_m = depth_to_metres(raw, depth_msg.encoding, depth_scale=self.p['depth_scale'])
        except ValueError as exc:
            self.bad('encoding', f'depth: {exc}')
            return
        depth_u16 = raw if raw.dtype == np.uint16 else metres_to_depth_units(
            depth_m, depth_scale=self.p['depth_scale'])
        if rgb.shape[:2] != depth_m.shape or (intr.width,
                                              intr.height) != (depth_m.shape[1], depth_m.shape[0]):
            self.bad(
                'size_mismatch',
                f'colour {rgb.shape[1]}x{rgb.shape[0]}, depth {depth_m.shape[1]}x'
                f'{depth_m.shape[0]} and camera_info '
                f'{intr.width}x{intr.height} differ',
            )
            return
        current = (rgb_msg.header, rgb, depth_u16, depth_m, intr)
        previous, self.previous = self.previous, current
        if previous is None:
            return
        if stamp_ns(current[0].stamp) == stamp_ns(previous[0].stamp):
            self.previous = previous
            self.bad('duplicate', 'the same captured frame arrived twice; ignored')
            return
        if stamp_ns(current[0].stamp) < stamp_ns(previous[0].stamp):
            self.bad('stamp_backwards',
                     'captured frames went back in time; starting over from this frame')
            return
        if previous[3].shape != depth_m.shape:
            self.bad('size_mismatch',
                     'the captured frames changed size; starting over from this frame')
            return
        self.label(previous, current)

    # ---------------------------------------------------------------- labelling
    def label(self, previous, current) -> None:
        header, rgb, depth_u16, depth_m, intr = previous
        step = annotate_step(depth_m, current[3], intr, self.config, before_rgb=rgb,
                             after_rgb=current[1])
        self.counts['steps'] += 1
        self.counts['accepted' if step.accepted else f'rejected_{step.reason}'] += 1
        grasps = step.grasps if step.accepted else np.zeros((0, 5))
        poses = step.poses if step.accepted else []
        if self.dataset is not None:  # durable first: a label anyone received is in the dataset
            self.append(step, previous, current, intr)
        self.pub_grasps.publish(grasps_to_msg(grasps,
                                              scores=step.scores if step.accepted else None,
                                              poses=poses,
                                              header=header, source=SOURCE_ANNOTATION,
                                              model_id=MODEL_ID))
        self.pub_markers.publish(grasp_markers(header, grasps, poses, intr))
        text = (f'{len(step.grasps)} grasps' if step.accepted else f'rejected: {step.reason}')
        overlay = draw_label(rgb, mask=step.mask, spine=step.spine, grasps=step.grasps, text=text,
                             accepted=step.accepted)
        self.pub_overlay.publish(numpy_to_image(overlay, 'rgb8', header=header))
        if not step.accepted:
            self.get_logger().info(
                f"step rejected: {step.reason} ({REASONS.get(step.reason, '')})")

    def append(self, step, previous, current, intr) -> None:
        ds = self.dataset
        if self.source is None:
            self.source = ds.add_source({'session': f"live:{self.p['color_topic']}",
                                         'name': 'live',
                                         'first_item': ds.next_index(), 'steps': 0,
                                         'complete': False,
                                         'camera': intrinsics_to_dict(intr,
                                                                      self.p['depth_scale'])})
        index = ds.next_index()
        rec = label_record(step, pick_index=self.counts['steps'] - 1, source=self.source,
                           session='live',
                           frame_after=self.counts['steps'])
        rec['stamp_ns'] = stamp_ns(previous[0].stamp)
        try:
            ds.write_item(index, rgb=previous[1], depth=previous[2], mask=step.mask, label=rec)
        except OSError as exc:
            self.bad('dataset_write', f'could not write to {ds.path}: {exc}')
            return
        ds.meta['sources'][self.source]['steps'] += 1
        ds.save_meta()

    def publish_diagnostics(self) -> None:
        rejected = sum(v for k, v in self.counts.items() if k.startswith('rejected_'))
        dropped = sum(v for k, v in self.counts.items() if k.startswith('dropped_'))
        message = (f"{self.counts['steps']} steps, {self.counts['accepted']} accepted, {rejected} "
                   'rejected'
                   + (f', {dropped} input message(s) dropped' if dropped else ''))
        keys = ['frames', 'steps', 'accepted'] + [f'rejected_{r}' for r in REASONS]
        keys += sorted(k for k in self.counts if k.startswith('dropped_'))
        self.health.publish(WARN if dropped else OK, message,
                            {k: self.counts.get(k, 0) for k in keys})

    def destroy_node(self):
        # (also called on a node whose __init__ stopped at a bad parameter)
        if getattr(self, 'dataset', None) and getattr(self, 'source', None) is not None:
            self.dataset.meta['sources'][self.source]['complete'] = True
            self.dataset.save_meta()
        if getattr(self, 'lock', None) is not None:
            self.lock.__exit__(None, None, None)
            self.lock = None
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(AutolabelNode, 'autolabel_node', args)


if __name__ == '__main__':
    sys.exit(main())
