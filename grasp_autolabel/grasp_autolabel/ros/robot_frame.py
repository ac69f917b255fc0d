"""The camera's mounting as node parameters, and the grasp outputs a motion planner reads.

One set of parameters (``base_frame``, ``camera_frame``, ``mounting_translation``,
``mounting_rotation``) describes where the camera optical frame sits in the robot's base frame,
as a hand-eye calibration gives it; ``config/mounting.yaml`` is the file ``cell.launch.py``
passes. The nodes that need it (inference_node; sim_camera_node, which places its camera there)
declare :data:`MOUNTING_PARAMS` and call :func:`mounting_from_params`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from geometry_msgs.msg import Pose, TransformStamped
from grasp_autolabel.core.mounting import Mounting, MountingError, pick_geometry, PickGeometry
from grasp_autolabel.ros.params import Param, ParameterError
import numpy as np
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

__all__ = ['MOUNTING_PARAMS', 'mounting_from_params', 'TF_STATIC_QOS', 'static_transform',
           'pose_msg', 'PickFields', 'offered_grasps']

MOUNTING_PARAMS = [
    Param('base_frame', '',
          "the robot's base frame every grasp is also given in (the hand-eye calibration's "
          'base); empty: no mounting, the planner outputs stay in the camera optical frame'),
    Param('camera_frame', 'camera_color_optical_frame',
          "the camera optical frame the mounting ends at (the colour images' frame_id)"),
    Param('mounting_translation', [0.0, 0.0, 0.0],
          "the camera optical frame's origin in base_frame, metres (x, y, z)"),
    Param('mounting_rotation', [0.0, 0.0, 0.0, 1.0],
          "the camera optical frame's rotation in base_frame: a unit quaternion (x, y, z, w) "
          'or a row-major 3x3 rotation matrix (9 numbers)'),
]

# What tf2_ros's StaticTransformBroadcaster uses: a late subscriber (RViz) still gets it.
TF_STATIC_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL,
                           history=HistoryPolicy.KEEP_LAST)


def mounting_from_params(p: dict) -> Mounting | None:
    """Return the mounting the parameters describe, None without ``base_frame``.

    Raises
    ------
    ParameterError
        Naming the parameter when the mounting is not a rigid transform.
    """
    if not p['base_frame'].strip():
        return None
    try:
        return Mounting.from_values(p['base_frame'], p['camera_frame'],
                                    p['mounting_translation'], p['mounting_rotation'])
    except MountingError as exc:
        raise ParameterError(f'parameter {exc}') from None


def static_transform(mounting: Mounting, stamp):
    """Return ``/tf_static``'s message for the mounting, or None where tf2_msgs is absent."""
    try:
        from tf2_msgs.msg import TFMessage
    except ImportError:
        return None
    t = TransformStamped()
    t.header.stamp = stamp
    t.header.frame_id = mounting.base_frame
    t.child_frame_id = mounting.camera_frame
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
        float(v) for v in mounting.translation)
    q = mounting.quaternion
    (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
     t.transform.rotation.w) = (float(v) for v in q)
    return TFMessage(transforms=[t])


def pose_msg(position, orientation) -> Pose:
    """Return a geometry_msgs/Pose of a position (3,) and a quaternion (x, y, z, w)."""
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    (pose.orientation.x, pose.orientation.y, pose.orientation.z,
     pose.orientation.w) = (float(v) for v in orientation)
    return pose


@dataclass(frozen=True)
class PickFields:
    """What a pick pipeline needs beside the camera-frame pose (GraspRect.msg, moveit_msgs/Grasp).

    ``geometry`` holds the TCP poses in ``frame`` (the base frame) and the camera frame;
    approach and retreat run along each pose's z axis over the distances given (metres).
    """

    frame: str
    geometry: PickGeometry
    approach_m: float
    retreat_m: float


def offered_grasps(mounting: Mounting, p: dict, poses, grasps, scores):
    """Return the grasps a gripper can take, their scores, poses and pick fields.

    A grasp with a valid pose whose opening exceeds ``p['gripper_stroke_m']`` is not offered;
    one without a pose (no depth under it) stays, 2-D only. ``p``: the node's parameters
    (``tcp_depth_ratio``, ``gripper_stroke_m``, ``pre_grasp_distance_m``,
    ``retreat_distance_m``).
    """
    geometry = pick_geometry(
        mounting, [q.position if q.valid else np.zeros(3) for q in poses],
        [q.orientation for q in poses], [q.opening_m if q.valid else np.nan for q in poses],
        tcp_depth_ratio=p['tcp_depth_ratio'], stroke_m=p['gripper_stroke_m'])
    keep = [i for i, q in enumerate(poses) if geometry.offered[i] or not q.valid]
    geometry = PickGeometry(*(getattr(geometry, f.name)[keep] for f in fields(PickGeometry)))
    pick = PickFields(mounting.base_frame, geometry, p['pre_grasp_distance_m'],
                      p['retreat_distance_m'])
    return grasps[keep], scores[keep], [poses[i] for i in keep], pick
