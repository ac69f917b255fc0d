#!/usr/bin/env python3
"""A motion planner's side of grasp_autolabel: detect, choose the best reachable grasp, pick.

Three ways to get the detector's grasps from inference_node, all in its ``base_frame`` (the
robot's frame, from the camera's mounting):

* ``--mode action`` (default): the ``/inference_node/sample_grasp_poses`` action, the interface
  of MoveIt Task Constructor's DeepGraspPose stage: one goal per pick, answered with the
  candidates of a frame taken after the goal (``grasp_candidates`` as PoseStamped, ``costs``
  ascending, and the same grasps with their opening, approach and retreat);
* ``--mode poses``: ``/inference_node/grasp_poses`` (geometry_msgs/PoseArray, best first) with
  ``/inference_node/grasps`` for the openings;
* ``--mode service``: ``/inference_node/get_grasps``, asking for a frame newer than the last pick.

"Reachable" stands in for a real planner's IK: the TCP pose, its pre-grasp point (back along the
approach) and the retreat lie inside a workspace box in the base frame, and the opening is
within the gripper's stroke. Of the reachable grasps scoring within 0.1 of the best, the highest
above the floor is taken (``--prefer top``: the top of a pile is what nothing rests on; ``--prefer
score``: the best scored), except that after a miss a grasp within 5 cm of where it missed comes
last, until a pick holds. With ``--execute SERVICE`` (the
simulated cell's robot, ``/camera/camera/execute_grasp``) each chosen grasp is carried out,
until the pile is empty, two picks in a row miss, or ``--picks`` is reached.

    python examples/planner_client.py [--mode action|poses|service] [--picks 3]
        [--execute /camera/camera/execute_grasp] [--workspace XMIN XMAX YMIN YMAX ZMIN ZMAX]
        [--max-opening-m 0.35] [--pause-s 0] [--timeout 10]

Prints one line per pick (the grasp in the base frame, its score, and with --execute the
outcome) and a JSON summary last; exits 1 when no reachable grasp came within --timeout on a
pick, 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseArray
from grasp_autolabel_msgs.action import SampleGraspPoses
from grasp_autolabel_msgs.msg import GraspRectArray
from grasp_autolabel_msgs.srv import ExecuteGrasp, GetGrasps
import rclpy
from rclpy.action import ActionClient
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy


def _xyz(v) -> tuple:
    return (v.x, v.y, v.z)


def reachable(g, args) -> bool:
    """A grasp the arm can take: TCP, pre-grasp and retreat points inside the box, stroke."""
    if not g.pose_valid or not 0.0 < g.opening_m <= args.max_opening_m:
        return False
    p = _xyz(g.grasp_pose.pose.position)
    a = _xyz(g.pre_grasp_approach.direction.vector)
    back = [g.pre_grasp_approach.desired_distance, g.post_grasp_retreat.desired_distance]
    box = args.workspace
    points = [p] + [tuple(pi - d * ai for pi, ai in zip(p, a)) for d in back]
    return all(box[0] <= x <= box[1] and box[2] <= y <= box[3] and box[4] <= z <= box[5]
               for x, y, z in points)


def near(g, places, radius: float = 0.05) -> bool:
    """Return whether the grasp's TCP lies within ``radius`` m of one of ``places`` (x, y, z)."""
    p = _xyz(g.grasp_pose.pose.position)
    return any(math.dist(p, q) < radius for q in places)


def choose(usable: list, missed_at: list, args):
    """Return the grasp to try of the reachable ones (best first), or None.

    ``--prefer score``: the best scored. ``--prefer top`` (default): of those scoring within
    ``--score-margin`` of the best, the one highest above the floor (base frame +z): the logs on
    top of a pile are the ones nothing rests on, as a person clearing it takes them. A grasp
    within 5 cm of where one missed since the last pick that held comes last.
    """
    fresh = [g for g in usable if not near(g, missed_at)] or usable
    if not fresh:
        return None
    if args.prefer == 'score':
        return fresh[0]
    good = [g for g in fresh if g.score >= fresh[0].score - args.score_margin]
    return max(good, key=lambda g: g.grasp_pose.pose.position.z)


def describe(k: int, g, header) -> str:
    p, q = g.grasp_pose.pose.position, g.grasp_pose.pose.orientation
    yaw = math.degrees(math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z)))
    return (f'pick {k}: grasp ({p.x:.3f}, {p.y:.3f}, {p.z:.3f}) m in '
            f'{g.grasp_pose.header.frame_id or header.frame_id}, yaw {yaw:.0f} deg, opening '
            f'{g.opening_m:.3f} m, score {g.score:.2f}, frame '
            f'{header.stamp.sec}.{header.stamp.nanosec:09d}')


class Planner(Node):
    """Gets grasps by one of three interfaces and (optionally) executes them."""

    def __init__(self, args):
        super().__init__('planner_client')
        self.args = args
        self.newest: GraspRectArray | None = None
        self.poses: PoseArray | None = None
        if args.mode == 'poses':
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
            self.create_subscription(GraspRectArray, args.grasps_topic, self._on_grasps, qos)
            self.create_subscription(PoseArray, args.poses_topic, self._on_poses, qos)
        elif args.mode == 'service':
            self.client = self.create_client(GetGrasps, args.service)
        else:
            self.action = ActionClient(self, SampleGraspPoses, args.action)
        self.executor_client = (self.create_client(ExecuteGrasp, args.execute)
                                if args.execute else None)

    def _on_grasps(self, msg: GraspRectArray) -> None:
        self.newest = msg

    def _on_poses(self, msg: PoseArray) -> None:
        self.poses = msg

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(self, timeout_sec=min(0.05, max(0.0, end - time.monotonic())))

    def _wait(self, future, deadline: float):
        rclpy.spin_until_future_complete(self, future,
                                         timeout_sec=max(0.05, deadline - time.monotonic()))
        return future.result() if future.done() else None

    def next_grasps(self, after: Time, deadline: float) -> GraspRectArray | None:
        """Grasps of a frame taken after the last pick (stamped after ``after``), best first."""
        if self.args.mode == 'poses':
            return self._next_subscribed(after, deadline)
        if self.args.mode == 'service':
            return self._next_service(after, deadline)
        if not self.action.wait_for_server(timeout_sec=max(0.1, deadline - time.monotonic())):
            return None
        feedback = []
        goal = SampleGraspPoses.Goal(action_name=self.args.action,
                                     timeout_s=max(0.1, min(5.0, deadline - time.monotonic())))
        handle = self._wait(self.action.send_goal_async(
            goal, feedback_callback=lambda f: feedback.append(f.feedback)), deadline)
        if handle is None or not handle.accepted:
            return None
        done = self._wait(handle.get_result_async(), deadline + 1.0)
        if not feedback:
            if done is not None:
                self.get_logger().info(f'no grasps yet: {done.result.grasp_state}')
            return None
        fb = feedback[-1]
        if len(fb.grasp_candidates) != len(fb.costs) or list(fb.costs) != sorted(fb.costs):
            raise RuntimeError('feedback: candidates and costs do not match, or are unsorted')
        return fb.grasps

    def _next_subscribed(self, after: Time, deadline: float):
        def newer(msg):
            return (msg is not None and (msg.header.stamp.sec, msg.header.stamp.nanosec)
                    > (after.sec, after.nanosec))

        while time.monotonic() < deadline:
            if newer(self.newest) and newer(self.poses) and (
                    self.poses.header.stamp == self.newest.header.stamp):
                return self.newest
            self.spin_for(0.02)
        return None

    def _next_service(self, after: Time, deadline: float):
        while not self.client.wait_for_service(timeout_sec=0.2):
            if time.monotonic() > deadline:
                return None
        left = max(0.1, deadline - time.monotonic())
        reply = self._wait(self.client.call_async(
            GetGrasps.Request(newer_than=after, timeout_s=min(left, 2.0))), deadline + 1.0)
        if reply is None or not reply.success:
            if reply is not None:
                self.get_logger().info(f'no grasps yet: {reply.message}')
            return None
        return reply.grasps

    def execute(self, g) -> ExecuteGrasp.Response | None:
        """Carry the grasp out on the simulated robot."""
        if not self.executor_client.wait_for_service(timeout_sec=5.0):
            return None
        request = ExecuteGrasp.Request(pose=g.grasp_pose, opening_m=g.opening_m)
        return self._wait(self.executor_client.call_async(request), time.monotonic() + 10.0)


def run(node: Planner, args, out=sys.stdout) -> dict:
    """The pick loop; returns the summary (picks, held, misses by cause, times)."""
    summary = {'picks': 0, 'held': 0, 'misses': {}, 'miss_details': [], 'detect_plan_s': [],
               'logs_left': None, 'stopped': ''}
    # where a grasp missed since the last one that held: the next pick tries elsewhere first
    last, misses_in_row, missed_at = Time(), 0, []
    for k in range(1, args.picks + 1):
        t0 = time.monotonic()
        deadline = t0 + args.timeout
        chosen = msg = None
        while chosen is None and time.monotonic() < deadline:
            msg = node.next_grasps(last, deadline)
            if msg is None:
                node.spin_for(0.1)  # no frame yet (camera silent, frames lost): ask again
                continue
            last = msg.header.stamp  # never plan twice on one frame
            chosen = choose([g for g in msg.grasps if reachable(g, args)], missed_at, args)
        if chosen is None:
            summary['stopped'] = f'pick {k}: no reachable grasp within {args.timeout:g} s'
            break
        summary['detect_plan_s'].append(time.monotonic() - t0)
        print(describe(k, chosen, msg.header), file=out, flush=True)
        if node.executor_client is None:
            continue  # here a real planner would move the arm
        reply = node.execute(chosen)
        if reply is None or reply.outcome == 'refused':
            summary['stopped'] = f'pick {k}: the robot refused or did not answer' + (
                f': {reply.message}' if reply else '')
            break
        summary['picks'] += 1
        summary['logs_left'] = reply.logs_left
        print(f'  -> {reply.outcome}: {reply.message}; {reply.logs_left} logs left', file=out,
              flush=True)
        if reply.success:
            summary['held'] += 1
            misses_in_row, missed_at = 0, []
        else:
            missed_at.append(_xyz(chosen.grasp_pose.pose.position))
            summary['misses'][reply.outcome] = summary['misses'].get(reply.outcome, 0) + 1
            summary['miss_details'].append(f'pick {k}: {reply.outcome}: {reply.message} '
                                           f'(score {chosen.score:.2f})')
            misses_in_row += 1
        if reply.logs_left == 0:
            summary['stopped'] = 'the pile is empty'
            break
        if misses_in_row >= 2:
            summary['stopped'] = 'two misses in a row'
            break
        if args.pause_s > 0:
            node.spin_for(args.pause_s)
    return summary


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--mode', choices=('action', 'poses', 'service'), default='action')
    ap.add_argument('--action', default='/inference_node/sample_grasp_poses')
    ap.add_argument('--grasps-topic', default='/inference_node/grasps')
    ap.add_argument('--poses-topic', default='/inference_node/grasp_poses')
    ap.add_argument('--service', default='/inference_node/get_grasps')
    ap.add_argument('--execute', default='', metavar='SERVICE',
                    help='carry each grasp out (the simulated cell: /camera/camera/execute_grasp)')
    ap.add_argument('--picks', type=int, default=3, help='at most this many picks')
    ap.add_argument('--timeout', type=float, default=10.0,
                    help='seconds to wait for a reachable grasp per pick')
    ap.add_argument('--workspace', type=float, nargs=6, default=(-2.0, 3.0, -2.0, 2.0, -0.05, 2.5),
                    metavar=('XMIN', 'XMAX', 'YMIN', 'YMAX', 'ZMIN', 'ZMAX'),
                    help="the arm's reach in the base frame, m")
    ap.add_argument('--max-opening-m', type=float, default=0.35, help="the gripper's stroke, m")
    ap.add_argument('--prefer', choices=('top', 'score'), default='top',
                    help='top: of the grasps scoring within --score-margin of the best, the '
                         'highest (the top of the pile); score: the best scored')
    ap.add_argument('--score-margin', type=float, default=0.1)
    ap.add_argument('--pause-s', type=float, default=0.0,
                    help='wait this long after each pick (the capture node labels each pick '
                         'once the scene has been still for its settle_s)')
    return ap


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    rclpy.init()
    node = Planner(args)
    summary = {}
    try:
        summary = run(node, args)
    except KeyboardInterrupt:
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        if summary:
            times = summary.pop('detect_plan_s')
            summary['detect_plan_s_mean'] = round(sum(times) / len(times), 4) if times else None
            print(json.dumps(summary), flush=True)
    if summary.get('stopped', '').startswith('pick ') and 'no reachable' in summary['stopped']:
        print(summary['stopped'], file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
