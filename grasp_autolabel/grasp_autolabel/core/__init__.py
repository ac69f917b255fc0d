"""The core: geometry, camera, depth, files, sessions, stamps, errors (numpy, OpenCV, PyYAML).

Every other layer builds on these; they import nothing of the rest of the package.
"""
