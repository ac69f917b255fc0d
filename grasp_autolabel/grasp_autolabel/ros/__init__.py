"""ROS 2 adapters: rclpy nodes and message conversion. The only package that imports rclpy."""
