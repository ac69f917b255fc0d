"""What inference_node offers a motion planner: grasp poses in the robot's frame, and the action.

* ``~/grasp_poses`` (geometry_msgs/PoseArray, best first, in ``base_frame``): the TCP pose of
  every offered grasp with a valid pose, for RViz and any planner;
* ``~/sample_grasp_poses`` (grasp_autolabel_msgs/action/SampleGraspPoses): the interface of
  MoveIt Task Constructor's ``DeepGraspPose`` stage: a goal is answered with one feedback that
  carries the candidates of a frame taken after the goal arrived (``grasp_candidates`` as
  PoseStamped in ``base_frame``, ``costs`` = 1 - score, ascending) and a result whose
  ``grasp_state`` says which frame and model, or why there is none (the goal is then aborted);
* ``/tf_static``: the camera's mounting (``base_frame`` -> ``camera_frame``), where tf2_msgs is
  importable, so RViz shows the camera where it is.
"""
from __future__ import annotations

import time

from geometry_msgs.msg import PoseArray
from grasp_autolabel.core.stamps import stamp_ns
from grasp_autolabel.ros.robot_frame import static_transform, TF_STATIC_QOS
from grasp_autolabel_msgs.action import SampleGraspPoses
from grasp_autolabel_msgs.msg import GraspRectArray
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup

__all__ = ['PlannerOutputs']


def offered_poses(msg: GraspRectArray) -> list:
    """Return the grasps of ``msg`` a planner can use (a valid pose), in the message's order."""
    return [g for g in msg.grasps if g.pose_valid]


class PlannerOutputs:
    """The PoseArray, the action server and the static transform of one inference node.

    Parameters
    ----------
    node : InferenceNode
        Provides ``wait_result(after_seq, newer_ns, timeout_s)``, ``frame_seq()``, ``mounting``,
        ``p`` (parameters) and ``health``.
    """

    def __init__(self, node, qos):
        self.node = node
        self.frame = node.mounting.base_frame
        self.pub_poses = node.create_publisher(PoseArray, '~/grasp_poses', qos)
        self.tf_pub = None
        if node.has_mounting:
            tf = static_transform(node.mounting, node.get_clock().now().to_msg())
            if tf is None:
                node.get_logger().info('tf2_msgs is not installed: the mounting is not published '
                                       'on /tf_static (grasp poses in base_frame are)')
            else:
                self.tf_pub = node.create_publisher(type(tf), '/tf_static', TF_STATIC_QOS)
                self.tf_pub.publish(tf)
        self.action = ActionServer(node, SampleGraspPoses, '~/sample_grasp_poses',
                                   execute_callback=self.execute,
                                   cancel_callback=lambda _: CancelResponse.ACCEPT,
                                   callback_group=ReentrantCallbackGroup())

    def publish(self, msg: GraspRectArray) -> None:
        """Publish the PoseArray of a frame's grasps (best first)."""
        out = PoseArray(poses=[g.grasp_pose.pose for g in offered_poses(msg)])
        out.header.stamp = msg.header.stamp
        out.header.frame_id = self.frame
        self.pub_poses.publish(out)

    def execute(self, goal_handle):
        """Answer one goal: a fresh frame's candidates as feedback, then the result."""
        node = self.node
        goal = goal_handle.request
        t0 = time.monotonic()
        timeout = goal.timeout_s if goal.timeout_s > 0 else node.p['action_timeout_s']
        found, why = node.wait_result(after_seq=node.frame_seq(),
                                      newer_ns=stamp_ns(goal.newer_than), timeout_s=timeout,
                                      cancelled=lambda: goal_handle.is_cancel_requested)
        result = SampleGraspPoses.Result()
        if found is None:
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                result.grasp_state = 'cancelled'
                return result
            node.health.counts['action_aborted'] += 1
            result.grasp_state = why
            goal_handle.abort()
            return result
        stamp, msg = found
        grasps = offered_poses(msg)
        if goal.max_grasps:
            grasps = grasps[:goal.max_grasps]
        feedback = SampleGraspPoses.Feedback()
        feedback.grasp_candidates = [g.grasp_pose for g in grasps]
        feedback.costs = [float(1.0 - g.score) for g in grasps]
        feedback.grasps = GraspRectArray(header=msg.header, source=msg.source,
                                         model_id=msg.model_id, grasps=grasps)
        goal_handle.publish_feedback(feedback)
        node.note_action_latency(time.monotonic() - t0)
        result.grasp_state = (f'{len(grasps)} candidates for the frame at {stamp * 1e-9:.3f} s, '
                              f'model {msg.model_id}, in {self.frame}')
        if grasps:
            goal_handle.succeed()
        else:
            result.grasp_state = 'no grasp candidates: ' + result.grasp_state
            goal_handle.abort()
        return result

    def destroy(self) -> None:
        self.action.destroy()
