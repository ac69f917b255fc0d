"""Jobs that combine the algorithms with the dataset store.

``label`` (capture sessions -> dataset), ``export`` (bags -> dataset), ``eval_labels`` (labels
against the simulator's truth), ``simulate`` (simulated sessions and bags on disk). Plain Python,
no ROS, no torch.
"""
