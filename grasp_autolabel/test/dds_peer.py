"""A second process for the DDS tests: publishes a known GraspRectArray, then waits.

Run as ``python dds_peer.py TOPIC``; it publishes with reliable, transient-local QoS (so a
subscriber that joins later still gets it) and exits on SIGTERM or after 60 s.
"""
import math
import sys

from builtin_interfaces.msg import Time
from grasp_autolabel.core.camera import CameraIntrinsics, grasp_pose
from grasp_autolabel.ros.messages import grasps_to_msg, SOURCE_DETECTOR
import rclpy
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Header

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)


def expected_message():
    """Return the message both processes agree on.

    Values chosen to catch float32/float64 mix-ups.
    """
    cam = CameraIntrinsics(640, 480, fx=615.123456789, fy=614.987654321, cx=321.5, cy=239.25)
    grasps = [[100.123456789012, 200.987654321098, -math.pi / 2, 55.5, 21.25],
              [320.0, 240.0, 0.3333333333333333, 80.0, 30.0],
              [10.5, 470.25, 1.2345678901234567, 12.0, 8.0]]
    scores = [0.25, 0.875, 0.5]
    poses = [grasp_pose(grasps[0], 1.987654321, cam), grasp_pose(grasps[1], 2.25, cam),
             grasp_pose(grasps[2], float('nan'), cam)]
    header = Header(stamp=Time(sec=1764000000, nanosec=123456789),
                    frame_id='camera_color_optical_frame')
    return grasps_to_msg(grasps, scores=scores, poses=poses, header=header, source=SOURCE_DETECTOR,
                         model_id='fasterrcnn_resnet50@step-50000')


def main():
    topic = sys.argv[1]
    rclpy.init()
    node = rclpy.create_node('dds_peer')
    pub = node.create_publisher(type(expected_message()), topic, LATCHED)
    pub.publish(expected_message())
    end = node.get_clock().now().nanoseconds + 60 * 10**9
    try:
        while rclpy.ok() and node.get_clock().now().nanoseconds < end:
            rclpy.spin_once(node, timeout_sec=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    main()
