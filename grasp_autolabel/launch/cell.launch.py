"""The node suite at a real cell: realsense2_camera (aligned depth), capture, autolabel and
inference.

    ros2 launch grasp_autolabel cell.launch.py [camera:=true] [auto_capture:=false]
        [session_dir:=session] [dataset_dir:=dataset] [model_path:=model.onnx] [inference:=true]

With ``camera:=true`` (default) realsense2_camera's ``rs_launch.py`` is included with
``align_depth.enable:=true`` and colour + depth enabled; with ``camera:=false`` start the camera
yourself (its default topics are the capture node's defaults). Press the button that calls
``/capture_node/capture`` after each pick, or set ``auto_capture:=true``. The inference node
serves grasps from ``model_path`` (an ONNX model from ``grasp-autolabel export-onnx``); started
without one it waits for ``/inference_node/load_model``.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    share = get_package_share_directory("grasp_autolabel")
    capture_config = os.path.join(share, "config", "capture.yaml")
    autolabel_config = os.path.join(share, "config", "autolabel.yaml")
    inference_config = os.path.join(share, "config", "inference.yaml")
    args = [
        DeclareLaunchArgument("camera", default_value="true",
                              description="include realsense2_camera's rs_launch.py with aligned depth"),
        DeclareLaunchArgument("auto_capture", default_value="false",
                              description="capture when the scene changed and then stayed still"),
        DeclareLaunchArgument("session_dir", default_value="session", description="capture session folder"),
        DeclareLaunchArgument("dataset_dir", default_value="dataset", description="grasp dataset folder"),
        DeclareLaunchArgument("inference", default_value="true", description="start the inference node"),
        DeclareLaunchArgument("model_path", default_value="",
                              description="detector for the inference node (.onnx, .pt or run folder)"),
    ]
    realsense = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(get_package_share_directory("realsense2_camera"), "launch",
                                                   "rs_launch.py")),
        launch_arguments={"align_depth.enable": "true", "enable_color": "true", "enable_depth": "true",
                          "pointcloud.enable": "false"}.items(),
        condition=IfCondition(LaunchConfiguration("camera")),
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
    inference = Node(
        package="grasp_autolabel", executable="inference_node", name="inference_node",
        parameters=[inference_config, {"model_path": LaunchConfiguration("model_path")}],
        condition=IfCondition(LaunchConfiguration("inference")),
        output="screen",
    )
    return LaunchDescription(args + [realsense, capture, autolabel, inference])
