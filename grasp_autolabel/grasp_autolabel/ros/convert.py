"""sensor_msgs/Image and CameraInfo for the nodes.

The readers (``grasp_autolabel.core.msg_codecs``, no ROS needed) and the depth units
(``grasp_autolabel.core.depth``) with the writers that build rclpy messages.
"""
from __future__ import annotations

from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.depth import depth_to_metres, metres_to_depth_units
from grasp_autolabel.core.msg_codecs import (camera_info_to_intrinsics, encoding_spec, ENCODINGS,
                                             image_to_numpy, to_rgb8)
import numpy as np

__all__ = ['ENCODINGS', 'image_to_numpy', 'numpy_to_image', 'camera_info_to_intrinsics',
           'intrinsics_to_camera_info', 'to_rgb8', 'depth_to_metres', 'metres_to_depth_units']


def numpy_to_image(array, encoding: str, *, header=None):
    """Encode a numpy array as a sensor_msgs/Image (little-endian, no row padding).

    Parameters
    ----------
    array : ndarray
        ``(H, W)`` for one-channel encodings or ``(H, W, C)``; its dtype must match the
        encoding (e.g. uint16 for ``16UC1``): values are never silently rescaled.
    encoding : str
        One of :data:`ENCODINGS`.
    header : std_msgs.msg.Header, optional

    Returns
    -------
    sensor_msgs.msg.Image
    """
    from sensor_msgs.msg import Image  # only this function needs the ROS message package

    dtype, channels = encoding_spec(encoding)
    a = np.asarray(array)
    if a.dtype != dtype:
        raise ValueError(f'array: dtype {a.dtype} does not match encoding {encoding!r} ({dtype})')
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if a.ndim != expected_ndim or (channels > 1 and a.shape[2] != channels):
        raise ValueError(f'array: shape {a.shape} does not fit encoding {encoding!r} '
                         f"({channels} channel{'s' if channels > 1 else ''})")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f'array: image is empty (shape {a.shape})')
    a = np.ascontiguousarray(a, dtype=dtype.newbyteorder('<'))
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(a.shape[1] * channels * dtype.itemsize)
    msg.data = a.tobytes()
    return msg


def intrinsics_to_camera_info(intrinsics: CameraIntrinsics, *, header=None):
    """:class:`CameraIntrinsics` -> sensor_msgs/CameraInfo (``k``, ``d``, ``r`` = I, ``p``)."""
    from sensor_msgs.msg import CameraInfo

    i = intrinsics
    msg = CameraInfo()
    if header is not None:
        msg.header = header
    msg.width, msg.height = int(i.width), int(i.height)
    msg.distortion_model = i.distortion_model
    msg.d = [float(v) for v in i.distortion] if i.distortion else [0.0] * 5
    msg.k = [float(i.fx), 0.0, float(i.cx), 0.0, float(i.fy), float(i.cy), 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [float(i.fx), 0.0, float(i.cx), 0.0, 0.0, float(i.fy), float(i.cy), 0.0, 0.0, 0.0, 1.0,
             0.0]
    return msg
