"""The simulated cell.

Sim_camera_node in place of realsense2_camera, plus capture and autolabel.

    ros2 launch grasp_autolabel sim.launch.py [auto_capture:=true] [session_dir:=...]
        [dataset_dir:=...] [fps:=30.0] [seed:=0] [arm_in_view_s:=1.0]
        [inference:=false model_path:=model.onnx] [mounting_file:=...]

The simulated camera is named ``camera`` in namespace ``camera``, so its topics are
realsense2_camera's ROS 2 defaults with aligned depth (``/camera/camera/color/image_raw``, ...),
which are the capture node's defaults. Call ``/camera/camera/pick`` (std_srvs/Trigger) to perform
the next pick; with ``auto_capture:=true`` (default) the capture node captures the pile once it
is still and again after every pick; with ``auto_capture:=false`` call ``/capture_node/capture``.
The camera is mounted as ``mounting_file`` says (``config/sim_mounting.yaml``: 1.9 m above the
floor, looking down); ``inference:=true`` adds the inference node with the same mounting, and
``/camera/camera/execute_grasp`` is the simulated robot (``examples/planner_client.py --execute
/camera/camera/execute_grasp`` clears the pile with it).
"""
from grasp_autolabel.ros.launch_args import (argument, config, DEFAULT_DATASET_DIR,
                                             DEFAULT_SESSION_DIR, param, UserPath)
from launch import LaunchDescription
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    args = [
        argument('fps', 30.0, 'frame rate of the simulated camera, Hz'),
        argument('seed', 0, 'random seed of the pile'),
        argument('arm_in_view_s', 1.0, "seconds the operator's arm stays in view after each pick"),
        argument('auto_capture', True,
                 'capture when the scene changed and then stayed still (no button)'),
        argument('session_dir', DEFAULT_SESSION_DIR,
                 'capture session folder (created; continued if it holds frames)'),
        argument('dataset_dir', DEFAULT_DATASET_DIR,
                 'grasp dataset folder every labelled step is appended to'),
        argument('inference', False, 'start the inference node'),
        argument('model_path', '', 'detector for the inference node (.onnx, .pt or run folder); '
                 'empty: the shipped simulator-trained model'),
        argument('mounting_file', config('sim_mounting.yaml'),
                 "the simulated camera's mounting, given to the camera and the inference node"),
    ]
    camera = Node(package='grasp_autolabel', executable='sim_camera_node', name='camera',
                  namespace='camera',
                  parameters=[config('sim_camera.yaml'), UserPath('mounting_file'),
                              {'fps': param('fps', float), 'seed': param('seed', int),
                               'arm_in_view_s': param('arm_in_view_s', float)}], output='screen')
    # capture and autolabel exactly as at the real cell: cell.launch.py without the RealSense
    # and without the inference node
    cell = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([
            FindPackageShare('grasp_autolabel'), 'launch', 'cell.launch.py'])),
        launch_arguments={'camera': 'false', 'inference': LaunchConfiguration('inference'),
                          'model_path': LaunchConfiguration('model_path'),
                          'mounting_file': LaunchConfiguration('mounting_file'),
                          'auto_capture': LaunchConfiguration('auto_capture'),
                          'session_dir': LaunchConfiguration('session_dir'),
                          'dataset_dir': LaunchConfiguration('dataset_dir')}.items())
    return LaunchDescription(args + [camera, cell])
