"""The simulated cell: sim_camera_node in place of realsense2_camera, plus capture and autolabel.

    ros2 launch grasp_autolabel sim.launch.py [auto_capture:=true] [session_dir:=session]
        [dataset_dir:=dataset] [fps:=30.0] [seed:=0] [arm_in_view_s:=1.0]

The simulated camera is named ``camera`` in namespace ``camera``, so its topics are
realsense2_camera's ROS 2 defaults with aligned depth (``/camera/camera/color/image_raw``, ...),
which are the capture node's defaults. Call ``/camera/camera/pick`` (std_srvs/Trigger) to perform
the next pick; with ``auto_capture:=false`` call ``/capture_node/capture`` after it.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("grasp_autolabel")
    sim_config = os.path.join(share, "config", "sim_camera.yaml")
    capture_config = os.path.join(share, "config", "capture.yaml")
    autolabel_config = os.path.join(share, "config", "autolabel.yaml")
    args = [
        DeclareLaunchArgument("fps", default_value="30.0", description="frame rate, Hz"),
        DeclareLaunchArgument("seed", default_value="0", description="pile seed"),
        DeclareLaunchArgument("arm_in_view_s", default_value="1.0",
                              description="seconds the operator's arm stays in view after a pick"),
        DeclareLaunchArgument("auto_capture", default_value="true",
                              description="capture when the scene changed and then stayed still"),
        DeclareLaunchArgument("session_dir", default_value="session", description="capture session folder"),
        DeclareLaunchArgument("dataset_dir", default_value="dataset", description="grasp dataset folder"),
    ]
    camera = Node(
        package="grasp_autolabel", executable="sim_camera_node", name="camera", namespace="camera",
        parameters=[sim_config, {"fps": LaunchConfiguration("fps"), "seed": LaunchConfiguration("seed"),
                                 "arm_in_view_s": LaunchConfiguration("arm_in_view_s")}],
        output="screen",
    )
    capture = Node(
        package="grasp_autolabel", executable="capture_node", name="capture_node",
        parameters=[capture_config, {"auto_capture": LaunchConfiguration("auto_capture"),
                                     "session_dir": LaunchConfiguration("session_dir")}],
        output="screen",
    )
    autolabel = Node(
        package="grasp_autolabel", executable="autolabel_node", name="autolabel_node",
        parameters=[autolabel_config, {"dataset_dir": LaunchConfiguration("dataset_dir")}],
        output="screen",
    )
    return LaunchDescription(args + [camera, capture, autolabel])
