"""GraspRectArray <-> numpy grasps (the only place that knows the message layout)."""
from __future__ import annotations

from dataclasses import dataclass

from geometry_msgs.msg import Pose
from grasp_autolabel.core.camera import GraspPose
from grasp_autolabel.core.geometry import as_grasps
from grasp_autolabel.ros.robot_frame import PickFields, pose_msg
from grasp_autolabel_msgs.msg import GraspRect, GraspRectArray
import numpy as np

__all__ = ['grasps_to_msg', 'msg_to_grasps', 'grasp_markers', 'DecodedGrasps', 'SOURCE_ANNOTATION',
           'SOURCE_DETECTOR']

SOURCE_ANNOTATION = GraspRectArray.SOURCE_ANNOTATION
SOURCE_DETECTOR = GraspRectArray.SOURCE_DETECTOR


def _fill_pick(r: GraspRect, i: int, pick: PickFields, header) -> None:
    g = pick.geometry
    r.pose = pose_msg(g.camera_positions[i], g.orientations_camera[i])
    if header is not None:
        r.grasp_pose.header.stamp = header.stamp
    r.grasp_pose.header.frame_id = pick.frame
    r.grasp_pose.pose = pose_msg(g.positions[i], g.orientations[i])
    for motion, sign, dist in ((r.pre_grasp_approach, 1.0, pick.approach_m),
                               (r.post_grasp_retreat, -1.0, pick.retreat_m)):
        motion.direction.header = r.grasp_pose.header
        motion.direction.vector.x, motion.direction.vector.y, motion.direction.vector.z = (
            float(sign * v) for v in g.approach[i])
        motion.desired_distance = float(dist)
        motion.min_distance = float(dist / 2)


def grasps_to_msg(grasps, *, scores=None, poses: list[GraspPose] | None = None, header=None,
                  source: int = SOURCE_DETECTOR, model_id: str = '',
                  pick: PickFields | None = None) -> GraspRectArray:
    """Build a GraspRectArray, sorted by score (highest first).

    Parameters
    ----------
    grasps : array_like, shape (N, 5)
        ``[x, y, theta, w, h]`` in the grasp convention (pixels, radians).
    scores : array_like, shape (N,), optional
        In [0, 1]; all 1 when omitted (automatic labels).
    poses : list of GraspPose, optional
        3-D poses in the header's frame; all invalid when omitted.
    pick : PickFields, optional
        The TCP poses (replacing ``poses``' surface points where valid), the same in the base
        frame, approach and retreat.
    """
    g = as_grasps(grasps)
    s = np.ones(len(g)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(g):
        raise ValueError(f'scores: {len(s)} scores for {len(g)} grasps')
    if poses is not None and len(poses) != len(g):
        raise ValueError(f'poses: {len(poses)} poses for {len(g)} grasps')
    out = GraspRectArray()
    if header is not None:
        out.header = header
    out.source = int(source)
    out.model_id = str(model_id)
    for i in np.argsort(-s, kind='stable'):
        r = GraspRect()
        r.x, r.y, r.theta, r.w, r.h = (float(v) for v in g[i])
        r.score = float(s[i])
        if poses is not None and poses[i].valid:
            p = poses[i]
            r.pose = Pose()
            r.pose.position.x, r.pose.position.y, r.pose.position.z = (float(
                v) for v in p.position)
            (r.pose.orientation.x, r.pose.orientation.y,
             r.pose.orientation.z, r.pose.orientation.w) = (float(v) for v in p.orientation)
            r.opening_m = float(p.opening_m)
            r.pose_valid = True
            if pick is not None:
                _fill_pick(r, int(i), pick, header)
        else:
            r.pose.orientation.w = 1.0
            r.pose_valid = False
        out.grasps.append(r)
    return out


@dataclass
class DecodedGrasps:
    """A GraspRectArray as numpy arrays, one row per grasp."""

    grasps: np.ndarray  # (N, 5)
    scores: np.ndarray  # (N,)
    positions: np.ndarray  # (N, 3), NaN where not valid
    orientations: np.ndarray  # (N, 4) x, y, z, w
    opening_m: np.ndarray  # (N,)
    pose_valid: np.ndarray  # (N,) bool


def msg_to_grasps(msg: GraspRectArray) -> DecodedGrasps:
    """Convert a GraspRectArray to arrays (in message order)."""
    rs = list(msg.grasps)
    grasps = np.array([[r.x, r.y, r.theta, r.w, r.h] for r in rs], dtype=np.float64).reshape(-1, 5)
    valid = np.array([bool(r.pose_valid) for r in rs], dtype=bool)
    pos = np.array([[r.pose.position.x, r.pose.position.y,
                     r.pose.position.z] for r in rs]).reshape(-1, 3)
    pos[~valid] = np.nan
    quat = np.array([[r.pose.orientation.x, r.pose.orientation.y, r.pose.orientation.z,
                      r.pose.orientation.w]
                     for r in rs]).reshape(-1, 4)
    return DecodedGrasps(grasps, np.array([r.score for r in rs], dtype=np.float64), pos, quat,
                         np.array([r.opening_m for r in rs], dtype=np.float64), valid)


def grasp_markers(header, grasps, poses, intrinsics):
    """Build RViz markers.

    Each grasp with a valid pose as a closed line strip at its depth (the best green, the others
    orange), after a DELETEALL that clears the previous frame's.
    """
    from geometry_msgs.msg import Point
    from grasp_autolabel.core.geometry import rect_to_corners
    from visualization_msgs.msg import Marker, MarkerArray

    out = MarkerArray()
    out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    for i, (g, pose) in enumerate(zip(grasps, poses)):
        if not pose.valid:
            continue
        z = float(pose.position[2])
        corners = rect_to_corners(g)
        pts = intrinsics.deproject(corners[:, 0], corners[:, 1], z)
        m = Marker(header=header, ns='grasps', id=i, type=Marker.LINE_STRIP, action=Marker.ADD)
        m.pose.orientation.w = 1.0
        m.scale.x = 0.004
        m.color.r, m.color.g, m.color.b, m.color.a = (0.1, 0.9, 0.1,
                                                      1.0) if i == 0 else (0.9, 0.6, 0.1, 0.8)
        m.points = [Point(x=float(x), y=float(y), z=float(zz)) for x, y,
                    zz in np.vstack([pts, pts[:1]])]
        out.markers.append(m)
    return out
