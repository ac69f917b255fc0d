"""The simulated cell: sim_camera_node in place of realsense2_camera.

    ros2 launch grasp_autolabel sim.launch.py [fps:=30] [seed:=0] [arm_in_view_s:=1.0]

The node is named ``camera`` in namespace ``camera``, so its topics are realsense2_camera's ROS 2
defaults with aligned depth (``/camera/camera/color/image_raw``, ...). Call
``/camera/camera/pick`` (std_srvs/Trigger) to perform the next pick.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    config = os.path.join(get_package_share_directory("grasp_autolabel"), "config", "sim_camera.yaml")
    args = [
        DeclareLaunchArgument("fps", default_value="30.0", description="frame rate, Hz"),
        DeclareLaunchArgument("seed", default_value="0", description="pile seed"),
        DeclareLaunchArgument("arm_in_view_s", default_value="0.0",
                              description="seconds the operator's arm stays in view after a pick"),
    ]
    camera = Node(
        package="grasp_autolabel",
        executable="sim_camera_node",
        name="camera",
        namespace="camera",
        parameters=[config, {"fps": LaunchConfiguration("fps"), "seed": LaunchConfiguration("seed"),
                             "arm_in_view_s": LaunchConfiguration("arm_in_view_s")}],
        output="screen",
    )
    return LaunchDescription(args + [camera])
