"""sim_camera_node: the simulated cell, published as realsense2_camera publishes a D4xx.

Topics (private, so a node named ``camera`` in namespace ``/camera`` gives realsense2_camera's
ROS 2 defaults with ``align_depth.enable:=true``, e.g. ``/camera/camera/color/image_raw``):

* ``~/color/image_raw`` (sensor_msgs/Image, rgb8), ``~/color/camera_info``
* ``~/aligned_depth_to_color/image_raw`` (16UC1, millimetres),
``~/aligned_depth_to_color/camera_info``
* ``~/ground_truth`` (std_msgs/String, JSON of each pick's ground truth; reliable, latched 10)

Services: ``~/pick`` (std_srvs/Trigger) performs the next pick, as a person would;
``~/execute_grasp`` (grasp_autolabel_msgs/ExecuteGrasp) is the simulated robot: it tries a grasp
(a TCP pose in ``base_frame``, or an image rectangle) and the simulator decides from its truth
whether the log comes out (:mod:`grasp_autolabel.sim.robot`); ``~/reset`` starts a new pile.

With a mounting (``base_frame``, ``mounting_translation``, ``mounting_rotation``: the same
parameters and file as inference_node's) the camera sits exactly there and the simulator's world
frame is ``base_frame`` (ground at z = 0, the pile where the optical axis meets it); without one,
each pile gets a random camera height and tilt as before.
"""
from __future__ import annotations

import json
import sys

from grasp_autolabel.core.camera import depth_at, grasp_poses
from grasp_autolabel.core.mounting import Mounting, pick_geometry, quaternion_to_matrix
from grasp_autolabel.ros.convert import intrinsics_to_camera_info, numpy_to_image
from grasp_autolabel.ros.params import declare_parameters, Param
from grasp_autolabel.ros.qos import SENSOR
from grasp_autolabel.ros.robot_frame import mounting_from_params, MOUNTING_PARAMS
from grasp_autolabel.ros.runner import run_node
from grasp_autolabel.sim.cell import CellConfig, SimCell
from grasp_autolabel.sim.robot import Gripper
from grasp_autolabel_msgs.srv import ExecuteGrasp
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from std_srvs.srv import Trigger

PARAMS = [
    Param('fps', 30.0, 'frame rate of colour and depth, Hz', min=1.0, max=60.0),
    Param('width', 640, 'image width, pixels', min=64, max=1920),
    Param('height', 480, 'image height, pixels', min=48, max=1080),
    Param('seed', 0, 'random seed of the pile (each reset advances it)', min=0, max=2**31 - 1),
    Param('logs', 0, 'logs per pile; 0 = 8 to 14 at random', min=0, max=254),
    Param(
        'fault_rate',
        0.0,
        'probability that a pick is a fault (failed pick, two logs, camera knocked, arm left in '
        'view)',
        min=0.0,
        max=1.0,
    ),
    Param(
        'arm_in_view_s',
        0.0,
        "seconds the operator's arm takes to withdraw from view after each pick (0 = never in "
        'view)',
        min=0.0,
        max=30.0,
    ),
    Param('frame_id', 'camera_color_optical_frame',
          'frame_id of the images (the colour optical frame)'),
    Param('tilt_max_deg', 12.0, 'largest camera tilt from straight down, degrees', min=0.0,
          max=45.0),
    Param('gripper_stroke_m', 0.35, "the simulated gripper's largest opening, m", min=0.001,
          max=10.0),
    Param('gripper_jaw_m', 0.08, "the simulated gripper's jaw size along the log, m",
          min=0.001, max=2.0),
    Param('tcp_depth_ratio', 0.5,
          '~/execute_grasp with a rectangle: the TCP lies this fraction of the opening beyond the '
          'surface (as inference_node places it)', min=0.0, max=2.0),
] + MOUNTING_PARAMS

GROUND_TRUTH_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.TRANSIENT_LOCAL)


class SimCameraNode(Node):
    """A simulated RealSense over a pile: realsense2_camera's topics, picks and the robot.

    Topics, services, parameters: the module's docstring and the README.
    """

    def __init__(self, **kwargs):
        super().__init__('camera', **kwargs)
        self.p = declare_parameters(self, PARAMS)
        self.mounting = mounting_from_params(self.p)
        pose = None if self.mounting is None else (self.mounting.translation,
                                                   self.mounting.rotation)
        self.config = CellConfig(width=self.p['width'], height=self.p['height'],
                                 fault_rate=self.p['fault_rate'],
                                 n_logs=(self.p['logs'],
                                         ) * 2 if self.p['logs'] else CellConfig.n_logs,
                                 tilt_max_deg=self.p['tilt_max_deg'], camera_pose=pose)
        self.gripper = Gripper(stroke_m=self.p['gripper_stroke_m'], jaw_m=self.p['gripper_jaw_m'])
        self.seed = self.p['seed']
        self.cell = SimCell(self.config, seed=self.seed)
        self.arm = None
        self.arm_until = None
        self.pub_rgb = self.create_publisher(Image, '~/color/image_raw', SENSOR)
        self.pub_rgb_info = self.create_publisher(CameraInfo, '~/color/camera_info', SENSOR)
        self.pub_depth = self.create_publisher(Image, '~/aligned_depth_to_color/image_raw', SENSOR)
        self.pub_depth_info = self.create_publisher(CameraInfo,
                                                    '~/aligned_depth_to_color/camera_info', SENSOR)
        self.pub_truth = self.create_publisher(String, '~/ground_truth', GROUND_TRUTH_QOS)
        self.create_service(Trigger, '~/pick', self.on_pick)
        self.create_service(Trigger, '~/reset', self.on_reset)
        self.create_service(ExecuteGrasp, '~/execute_grasp', self.on_execute_grasp)
        self.timer = self.create_timer(1.0 / self.p['fps'], self.publish_frame)
        self.frames = 0
        self.get_logger().info(f'simulated cell: {len(self.cell.pile.logs)} logs, '
                               f"{self.p['width']}x{self.p['height']} "
                               f"at {self.p['fps']:g} Hz")

    def publish_frame(self) -> None:
        now = self.get_clock().now()
        occluders = ()
        if self.arm is not None:
            left = (self.arm_until - now).nanoseconds * 1e-9
            if left > 0:
                # the operator's arm withdraws over arm_in_view_s: its hand end moves back out
                done = 1.0 - left / self.p['arm_in_view_s']
                a = self.arm
                end = a.end + min(done, 0.9) * (a.start - a.end)
                occluders = (type(a)(a.start, end, a.radius, a.colour),)
            else:
                self.arm = None
        rgb, depth = self.cell.frame(occluders=occluders)
        header = Header(stamp=now.to_msg(), frame_id=self.p['frame_id'])
        info = intrinsics_to_camera_info(self.cell.intrinsics, header=header)
        self.pub_rgb.publish(numpy_to_image(rgb, 'rgb8', header=header))
        self.pub_depth.publish(numpy_to_image(depth, '16UC1', header=header))
        self.pub_rgb_info.publish(info)
        self.pub_depth_info.publish(info)
        self.frames += 1

    def _after_step(self, truth: dict, *, person: bool = True) -> None:
        """Publish a step's truth; a person's arm withdraws from view over arm_in_view_s.

        (The robot's arm has left the view with the log by the time its call returns.)
        """
        truth['frame_truth_after'] = self.cell.frame_truth()
        self.pub_truth.publish(String(data=json.dumps(truth)))
        if person and self.p['arm_in_view_s'] > 0:
            self.arm = self.cell.arm()
            self.arm_until = self.get_clock().now() + rclpy.duration.Duration(
                seconds=self.p['arm_in_view_s'])

    def on_pick(self, request, response):
        if self.cell.done:
            response.success, response.message = (False,
                                                  'the pile is empty; call ~/reset for a new one')
            return response
        step = self.cell.pick()
        self._after_step(step.to_json())
        removed = ', '.join(map(str, step.removed)) or 'nothing'
        response.success = True
        response.message = f'step {step.step}: removed {removed}' + (
            f' ({step.fault})' if step.fault else '')
        return response

    def _grasp_in_world(self, request):
        """Return ``(tcp, approach, closing, opening_m)`` of a request (world), or a reason."""
        grasp = self._tcp_in_world(request)
        if isinstance(grasp, tuple) and not (np.isfinite(grasp[3]) and grasp[3] > 0):
            return f'opening_m = {grasp[3]}: expected a positive opening'
        return grasp

    def _tcp_in_world(self, request):
        frame = request.pose.header.frame_id
        if frame:
            base = self.mounting.base_frame if self.mounting else ''
            if frame != base:
                return f"pose in frame '{frame}': the simulated robot takes poses in " + (
                    f"'{base}'" if base else 'no frame (no mounting set: give a rect)')
            p, q = request.pose.pose.position, request.pose.pose.orientation
            quat = np.array([q.x, q.y, q.z, q.w])
            if not np.all(np.isfinite(quat)) or abs(np.linalg.norm(quat) - 1.0) > 1e-3:
                return f'pose orientation {quat.tolist()}: not a unit quaternion'
            r = quaternion_to_matrix(quat)
            return np.array([p.x, p.y, p.z]), r[:, 2], r[:, 0], request.opening_m
        g = request.rect
        i = self.cell.intrinsics
        rect = np.array([g.x, g.y, g.theta, g.w, g.h], dtype=np.float64)
        if not np.all(np.isfinite(rect)) or g.w <= 0 or g.h <= 0:
            return f'rect {rect.round(3).tolist()}: not finite, or a size <= 0'
        if not (0 <= g.x <= i.width - 1 and 0 <= g.y <= i.height - 1):
            return f'rect centre ({g.x:.1f}, {g.y:.1f}) outside the {i.width}x{i.height} image'
        z = depth_at(self.cell.clean().depth, g.x, g.y, radius=2)
        pose = grasp_poses(rect[None], [z], i)[0]
        if not pose.valid:
            return f'rect centre ({g.x:.1f}, {g.y:.1f}): no depth there'
        cam = self.cell.camera
        world = Mounting('world', 'camera', cam.position, cam.rotation)
        geo = pick_geometry(world, [pose.position], [pose.orientation], [pose.opening_m],
                            tcp_depth_ratio=self.p['tcp_depth_ratio'], stroke_m=np.inf)
        r = quaternion_to_matrix(geo.orientations[0])
        opening = request.opening_m if request.opening_m > 0 else pose.opening_m
        return geo.positions[0], r[:, 2], r[:, 0], opening

    def on_execute_grasp(self, request, response):
        response.logs_left = len(self.cell.pile.logs)
        response.log_id = -1
        grasp = None if self.cell.done else self._grasp_in_world(request)
        if grasp is None or isinstance(grasp, str):
            response.success, response.outcome = False, 'refused'
            response.message = grasp or 'the pile is empty; call ~/reset for a new one'
            self.get_logger().warning(f'execute_grasp refused: {response.message}')
            return response
        step, verdict = self.cell.robot_pick(*grasp, gripper=self.gripper)
        truth = step.to_json()
        truth['robot'] = {'outcome': verdict.outcome, 'log_id': verdict.log_id,
                          'message': verdict.message}
        self._after_step(truth, person=False)
        response.success, response.outcome = verdict.held, verdict.outcome
        response.message = f'step {step.step}: {verdict.message}'
        response.log_id, response.logs_left = verdict.log_id, len(self.cell.pile.logs)
        return response

    def on_reset(self, request, response):
        self.seed += 1
        self.cell = SimCell(self.config, seed=self.seed)
        self.arm = None
        response.success, response.message = (
            True, f'new pile of {len(self.cell.pile.logs)} logs (seed {self.seed})')
        return response


def main(args=None) -> int:
    return run_node(SimCameraNode, 'sim_camera_node', args)


if __name__ == '__main__':
    sys.exit(main())
