"""inference_node: the trained detector, live, for the motion planner.

Subscribes (sensor-data QoS, depth 1) to the colour image, the aligned depth and camera_info.
A worker thread always takes the *newest* colour frame (frames that arrived while it was busy
are dropped and counted, never queued), pairs it with the depth frame of the nearest stamp,
runs the detector (ONNX Runtime or torch) and publishes

* ``~/grasps`` (grasp_autolabel_msgs/GraspRectArray, reliable): header = the colour frame's,
  sorted by score, source = DETECTOR, model_id; each grasp's 3-D pose in the camera optical
  frame (depth: median over a 7x7 window at the centre, robust to holes) and its opening in
  metres; ``pose_valid`` false where there is no depth (or no depth frame / camera_info at all:
  the 2-D grasps are still published);
* ``~/grasp_poses``, ``~/sample_grasp_poses`` (MoveIt Task Constructor's DeepGraspPose
  interface) and ``/tf_static``: see :mod:`grasp_autolabel.ros.planner_outputs`. With a mounting
  (``base_frame`` and ``mounting_*``, see :mod:`grasp_autolabel.ros.robot_frame`) every grasp's
  pose is also given in ``base_frame``, with approach and retreat; a grasp wider than the
  gripper's stroke is not offered;
* ``~/markers`` (visualization_msgs/MarkerArray) and ``~/overlay`` (sensor_msgs/Image rgb8);
* ``/diagnostics``: rate, latency (image received -> grasps published, p50/p99), model id,
  every dropped or degraded input counted by kind; ERROR while no model is loaded.

Services: ``~/get_grasps`` (grasp_autolabel_msgs/GetGrasps: the newest frame's grasps, or wait
for a frame newer than a stamp) and ``~/load_model`` (grasp_autolabel_msgs/LoadModel: swap the
model without a restart; only models inside ``model_dir``; a model that fails to load or is
refused leaves the old one in use).
"""
from __future__ import annotations

from collections import deque
from pathlib import Path
import sys
import threading
import time

from grasp_autolabel.core.camera import depth_at, grasp_poses
from grasp_autolabel.core.mounting import Mounting
from grasp_autolabel.core.stamps import stamp_ns
from grasp_autolabel.detector.model_files import (default_model_dir, ModelPathError, NO_MODEL,
                                                  open_model, SHIPPED_DESCRIPTION, shipped_model)
from grasp_autolabel.ros.convert import numpy_to_image
from grasp_autolabel.ros.health import ERROR, Health, OK, WARN
from grasp_autolabel.ros.inference_inputs import CameraInputs
from grasp_autolabel.ros.messages import grasp_markers, grasps_to_msg, SOURCE_DETECTOR
from grasp_autolabel.ros.params import declare_parameters, Param
from grasp_autolabel.ros.planner_outputs import PlannerOutputs
from grasp_autolabel.ros.qos import RELIABLE
from grasp_autolabel.ros.robot_frame import mounting_from_params, MOUNTING_PARAMS, offered_grasps
from grasp_autolabel.ros.runner import run_node
from grasp_autolabel_msgs.msg import GraspRectArray
from grasp_autolabel_msgs.srv import GetGrasps, LoadModel
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

PARAMS = [
    Param('color_topic', '/camera/camera/color/image_raw',
          'colour image (rgb8, bgr8, rgba8, bgra8, mono8)'),
    Param('depth_topic', '/camera/camera/aligned_depth_to_color/image_raw',
          'depth aligned to colour (16UC1 in depth_scale units, or 32FC1 metres)'),
    Param('camera_info_topic', '/camera/camera/color/camera_info',
          'camera_info of the colour (= aligned depth) image'),
    Param(
        'model_path',
        '',
        'detector: a .onnx model, a .pt checkpoint or a run folder; empty: the shipped '
        'simulator-trained model (models/sim_grasp_map.onnx); none: wait for ~/load_model',
    ),
    Param('model_dir', '',
          'the only folder models are loaded from (model_path and ~/load_model; symlinks '
          'followed); empty: the folder of model_path, else ~/grasp_autolabel/models'),
    Param('backend', 'onnx', 'onnx (ONNX Runtime, CPU) or torch', choices=('onnx', 'torch')),
    Param('device', 'cpu', 'torch backend: cpu or cuda[:N]'),
    Param('threads', 0, 'onnx backend: intra-op threads (0: one per core)', min=0, max=256),
    Param('score_threshold', -1.0,
          "keep grasps scoring at least this; -1: the model's own threshold", min=-1.0, max=1.0),
    Param('max_grasps', 10, 'publish at most this many grasps per frame', min=1, max=1000),
    Param('depth_scale', 0.001, 'metres per unit of integer depth (RealSense: 0.001)', min=1e-6,
          max=1.0),
    Param('max_pair_dt', 0.05,
          'largest stamp difference between a colour and a depth frame to pair them, s', min=0.0,
          max=1.0),
    Param('depth_window_px', 3, 'half size of the window whose median depth places a grasp in 3-D',
          min=0, max=50),
    Param('publish_overlay', True, 'publish ~/overlay (the colour image with the grasps drawn)'),
    Param('diagnostics_period_s', 1.0, 'period of /diagnostics, s', min=0.1, max=60.0),
    Param('input_timeout_s', 3.0,
          'an input silent this long is reported on /diagnostics (ERROR) and subscribed afresh',
          min=0.1, max=600.0),
    Param('rejoin_after_s', 30.0,
          'no publisher in sight on any input this long: start again as a fresh DDS participant '
          '(doubling while nothing is heard); 0: never', min=0.0, max=86400.0),
    Param('gripper_stroke_m', 0.35,
          "the gripper's largest opening, m: a grasp that needs more is not offered",
          min=0.001, max=10.0),
    Param('tcp_depth_ratio', 0.5,
          'the grasp pose lies this fraction of the opening beyond the surface along the line of '
          "sight (0.5: a round log's width x 0.65 at the labels' opening margin 1.3, the "
          'fingertips past its axis; 0: the surface)', min=0.0, max=2.0),
    Param('pre_grasp_distance_m', 0.10, 'approach distance before the grasp pose, m', min=0.0,
          max=5.0),
    Param('retreat_distance_m', 0.15, 'retreat distance after the grasp, m', min=0.0, max=5.0),
    Param('action_timeout_s', 2.0,
          '~/sample_grasp_poses: how long a goal without a timeout waits for a new frame, s',
          min=0.1, max=600.0),
] + MOUNTING_PARAMS


class InferenceNode(Node):
    """Serves the detector's grasps on the newest frame to the planner (see the module)."""

    def __init__(self, **kwargs):
        super().__init__('inference_node', **kwargs)
        self.p = declare_parameters(self, PARAMS)
        self.mounting = mounting_from_params(self.p)
        self.has_mounting = self.mounting is not None
        if self.mounting is None:
            self.mounting = Mounting.identity(self.p['camera_frame'])
        given = self.p['model_path'].strip()
        self.model_dir = (Path(self.p['model_dir']).expanduser() if self.p['model_dir'].strip()
                          else default_model_dir('' if given == NO_MODEL else given))
        self.health = Health(self, 'inference_node', self.p['color_topic'], dropped=False)
        self.counts, self.bad = self.health.counts, self.health.bad
        self.cv = threading.Condition()
        self.result = None  # (stamp ns, GraspRectArray, frame number)
        self.latencies: deque = deque(maxlen=1000)
        self.action_latencies: deque = deque(maxlen=1000)
        self.published_times: deque = deque(maxlen=200)
        self.predictor = None
        self.model_id = ''
        self.model_error = f'model_path {NO_MODEL}; call ~/load_model'
        self.model_origin = ''
        self.model_lock = threading.Lock()
        if given == '':  # the package's own model, trusted wherever it is installed
            try:
                self._log_load(*self.load_model(str(shipped_model()), 'onnx', trusted=True))
            except ModelPathError as exc:
                self.model_error = str(exc)
                self._log_load(False, str(exc))
        elif given != NO_MODEL:
            self._log_load(*self.load_model(given, self.p['backend']))
        sensors = MutuallyExclusiveCallbackGroup()
        # the camera's messages are taken by the worker when it is free (inference_inputs.py)
        self.inputs = CameraInputs(self)
        self.pub_grasps = self.create_publisher(GraspRectArray, '~/grasps', RELIABLE)
        self.pub_markers = self.create_publisher(MarkerArray, '~/markers', RELIABLE)
        self.pub_overlay = self.create_publisher(Image, '~/overlay', RELIABLE)
        self.planner = PlannerOutputs(self, RELIABLE)
        services = ReentrantCallbackGroup()
        self.create_service(GetGrasps, '~/get_grasps', self.on_get_grasps, callback_group=services)
        self.create_service(LoadModel, '~/load_model', self.on_load_model, callback_group=services)
        self.create_timer(self.p['diagnostics_period_s'], self.publish_diagnostics,
                          callback_group=sensors)
        self.running = True
        self.worker = threading.Thread(target=self.work, name='inference', daemon=True)
        self.worker.start()
        # Ctrl-C shuts the context down before destroy_node runs: stop the worker first, or its
        # next publish fails on the dead context
        self.context.on_shutdown(self.stop_worker)
        self.get_logger().info(f"detecting grasps on {self.p['color_topic']} with "
                               f"{self.model_id or 'no model yet (' + self.model_error + ')'}; "
                               f'models from {self.model_dir}; ' + (
                                   f'poses also in {self.mounting.base_frame}' if self.has_mounting
                                   else 'no mounting (base_frame empty): poses in the camera '
                                   'frame only'))

    # ---------------------------------------------------------------- model
    def load_model(self, path: str, backend: str, *, trusted: bool = False) -> tuple[bool, str]:
        p = self.p
        predictor, message, refused = open_model(
            path, backend or p['backend'], model_dir=self.model_dir, trusted=trusted,
            device=p['device'], threads=int(p['threads']) or None, max_grasps=p['max_grasps'],
            score_threshold=p['score_threshold'] if p['score_threshold'] >= 0 else None)
        if predictor is None:
            self.counts['model_refused'] += int(refused)
            if self.predictor is None:
                self.model_error = message
            return False, message + (f'; {self.model_id} still serving' if self.model_id else '')
        with self.model_lock:
            self.predictor = predictor
            self.model_id = predictor.model_id
            self.model_error = ''
            self.model_origin = SHIPPED_DESCRIPTION if trusted else 'given'
        return True, (f'model {predictor.model_id} loaded from {path} ({backend})'
                      + (f": {SHIPPED_DESCRIPTION}; train one on your cell's labels and set "
                         'model_path' if trusted else ''))

    def _log_load(self, ok: bool, message: str) -> None:
        # (rclpy refuses one call site logging at two severities: two call sites)
        if ok:
            self.get_logger().info(message)
        else:
            self.get_logger().error(message)

    def on_load_model(self, request, response):
        ok, message = self.load_model(request.model_path, request.backend)
        self._log_load(ok, message)
        response.success, response.message, response.model_id = ok, message, self.model_id
        return response

    # ---------------------------------------------------------------- work
    def work(self) -> None:
        while self.running:
            try:
                item = self.inputs.newest(0.05)
            except Exception as exc:  # noqa: B902 - shutting down under a wait (InvalidHandle)
                if not self.running or not self.context.ok():
                    return
                self.bad('failed', f'input failed: {type(exc).__name__}: {exc}')
                time.sleep(0.05)
                continue
            if item is None:
                continue
            try:
                self.process(*item)
            except Exception as exc:  # noqa: B902 - a bad frame must never stop the node
                if not self.running or not self.context.ok():
                    return  # shutting down under a frame: not a failure of the frame
                self.bad('failed', f'frame failed: {type(exc).__name__}: {exc}')

    def process(self, msg: Image, received: float, seq: int) -> None:
        with self.model_lock:
            predictor = self.predictor
        if predictor is None:
            self.counts['no_model'] += 1
            return
        inputs = self.inputs.prepare(msg, predictor, lambda: self.running)
        if inputs is None:
            return
        rgb, depth_m, intr = inputs
        try:
            grasps, scores = predictor.predict(rgb, depth_m,
                                               fx=intr.fx if intr is not None else None)
        except ValueError as exc:
            self.bad('unexpected_input', f'colour frame: {exc}')
            return
        self._publish(msg, (received, seq), predictor.model_id, rgb, depth_m, intr,
                      grasps[:self.p['max_grasps']],
                      scores[:self.p['max_grasps']])

    def _publish(self, msg: Image, arrival: tuple, model_id: str, rgb, depth_m, intr, grasps,
                 scores) -> None:
        """Publish the grasps (3-D poses where depth and camera_info allow), markers, overlay."""
        received, seq = arrival
        poses, pick = None, None
        if depth_m is not None and intr is not None:
            r = int(self.p['depth_window_px'])
            z = [depth_at(depth_m, g[0], g[1], radius=r) for g in grasps]
            poses = grasp_poses(grasps, z, intr)
            self.counts['no_depth_at_grasp'] += sum(1 for p in poses if not p.valid)
            grasps, scores, poses, pick = offered_grasps(self.mounting, self.p, poses,
                                                         np.asarray(grasps), np.asarray(scores))
            self.counts['beyond_stroke'] += len(z) - len(poses)
        out = grasps_to_msg(grasps, scores=scores, poses=poses, header=msg.header,
                            source=SOURCE_DETECTOR, model_id=model_id, pick=pick)
        self.pub_grasps.publish(out)
        latency = time.monotonic() - received
        with self.cv:
            self.result = (stamp_ns(msg.header.stamp), out, seq)
            self.latencies.append(latency)
            self.published_times.append(time.monotonic())
            self.counts['published'] += 1
            self.cv.notify_all()
        self.planner.publish(out)
        # markers and the overlay only for someone who listens (RViz): drawing and sending a
        # 1 MB image nobody reads costs the next frame's latency
        if poses is not None and self.pub_markers.get_subscription_count():
            self.pub_markers.publish(grasp_markers(msg.header, grasps, poses, intr))
        if self.p['publish_overlay'] and self.pub_overlay.get_subscription_count():
            from grasp_autolabel.annotate.viz import draw_grasps

            self.pub_overlay.publish(numpy_to_image(draw_grasps(rgb.copy(), grasps, thickness=2),
                                                    'rgb8',
                                                    header=msg.header))

    # ---------------------------------------------------------------- results
    def frame_seq(self) -> int:
        """Return the number of the newest colour frame received."""
        return self.inputs.frame_seq()

    def wait_result(self, *, after_seq: int = 0, newer_ns: int = 0, timeout_s: float,
                    cancelled=lambda: False):
        """Wait for grasps of a frame received after ``after_seq`` and stamped after ``newer_ns``.

        Returns ``((stamp_ns, GraspRectArray), '')``, or ``(None, why)`` after ``timeout_s``.
        """
        if self.predictor is None:
            return None, f'no model loaded: {self.model_error}'
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self.cv:
            while (self.result is None or self.result[0] <= newer_ns
                   or self.result[2] <= after_seq):
                left = deadline - time.monotonic()
                if left <= 0 or cancelled() or not self.running:
                    return None, self._no_result_reason(newer_ns, after_seq, timeout_s)
                self.cv.wait(min(left, 0.05))
            return self.result[:2], ''

    def _no_result_reason(self, newer_ns: int, after_seq: int, timeout_s: float) -> str:
        if self.inputs.frame_seq() <= after_seq:
            what = f'no camera frame arrived on {self.p["color_topic"]}'
        elif self.result is None or self.result[2] <= after_seq:
            what = 'no frame processed (see /diagnostics for the inputs dropped)'
        else:
            what = (f'no frame newer than {newer_ns * 1e-9:.3f} s '
                    f'(newest: {self.result[0] * 1e-9:.3f} s)')
        return f'{what} within {timeout_s:g} s'

    def note_action_latency(self, seconds: float) -> None:
        with self.cv:
            self.action_latencies.append(seconds)

    # ---------------------------------------------------------------- service
    def on_get_grasps(self, request, response):
        found, why = self.wait_result(newer_ns=stamp_ns(request.newer_than),
                                      timeout_s=request.timeout_s)
        if found is None:
            response.success, response.message = False, why
            return response
        stamp, msg = found
        out = GraspRectArray(
            header=msg.header,
            source=msg.source,
            model_id=msg.model_id,
            grasps=list(msg.grasps[: request.max_grasps] if request.max_grasps else msg.grasps),
        )
        response.success = True
        response.message = (
            f'{len(out.grasps)} grasps for the frame at {stamp * 1e-9:.3f} s, model {msg.model_id}'
        )
        response.grasps = out
        return response

    # ---------------------------------------------------------------- diagnostics
    def publish_diagnostics(self) -> None:
        with self.cv:
            lat = np.array(self.latencies) * 1000.0
            action_lat = np.array(self.action_latencies) * 1000.0
            times = list(self.published_times)
            counts = dict(self.counts)
        now = time.monotonic()
        recent = [t for t in times if now - t <= 5.0]
        rate = len(recent) / min(5.0, max(1e-3, now - recent[0])) if len(recent) >= 2 else 0.0
        degraded = {k: v for k,
                    v in counts.items() if k not in ('frames', 'published', 'dropped_stale',
                                                     'beyond_stroke', 'action_aborted') and v}
        stalled = self.inputs.check()
        if self.predictor is None:
            level, message = ERROR, f'no model: {self.model_error}'
        elif stalled:
            level, message = ERROR, '; '.join(stalled)
        else:
            level = WARN if degraded else OK
            message = (f'{rate:.1f} Hz, latency p50 {np.percentile(lat, 50):.0f} ms'
                       if len(lat) else 'waiting for frames')
            if degraded:
                message += '; ' + ', '.join(f'{k} {v}' for k, v in sorted(degraded.items()))
            if self.model_origin == SHIPPED_DESCRIPTION:
                message += f'; serving {SHIPPED_DESCRIPTION}'
        values = {'model_id': self.model_id or '(none)', 'model_error': self.model_error,
                  'model_origin': self.model_origin,
                  'rate_hz': f'{rate:.2f}',
                  'latency_ms_p50': f'{np.percentile(lat, 50):.1f}' if len(lat) else '',
                  'latency_ms_p99': f'{np.percentile(lat, 99):.1f}' if len(lat) else '',
                  'action_feedback_ms_p99': (f'{np.percentile(action_lat, 99):.1f}'
                                             if len(action_lat) else ''),
                  'base_frame': self.mounting.base_frame if self.has_mounting else '(none)'}
        values.update({k: str(v) for k, v in sorted(counts.items())})
        values.update(self.inputs.watch.values())
        self.health.publish(level, message, values)

    def stop_worker(self) -> None:
        if getattr(self, 'worker', None) is None:
            return  # (a node whose __init__ stopped at a bad parameter: no worker yet)
        with self.cv:
            self.running = False
            self.cv.notify_all()
        if self.worker is not threading.current_thread():
            self.worker.join(timeout=5.0)

    def destroy_node(self):
        self.stop_worker()
        if getattr(self, 'planner', None) is not None:
            self.planner.destroy()
        if getattr(self, 'inputs', None) is not None:
            self.inputs.destroy()
        return super().destroy_node()


def main(args=None) -> int:
    return run_node(InferenceNode, 'inference_node', args, multithreaded=True)


if __name__ == '__main__':
    sys.exit(main())
