"""Read sensor_msgs/Image into numpy and CameraInfo into intrinsics, without ROS.

The cv_bridge these machines lack.

The readers take any object with the message's fields (an rclpy message, a `rosbags`
message, a test double), so bag export and the nodes share them. The writers, which build
rclpy messages, are in ``ros/convert.py``.

Supported encodings (sensor_msgs/image_encodings.hpp names):

========  =======  ========  =========================================
encoding  dtype    channels  notes
========  =======  ========  =========================================
mono8     uint8    1
mono16    uint16   1
16UC1     uint16   1         RealSense depth: millimetres (depth_scale)
32FC1     float32  1         depth in metres (e.g. after depth_image_proc)
rgb8      uint8    3
bgr8      uint8    3
rgba8     uint8    4
bgra8     uint8    4
========  =======  ========  =========================================
"""
from __future__ import annotations

from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.core.imageheader import check_pixels
import numpy as np

__all__ = ['ENCODINGS', 'encoding_spec', 'image_to_numpy', 'to_rgb8', 'camera_info_to_intrinsics']

# encoding -> (dtype, channels)
ENCODINGS: dict[str,
                tuple[np.dtype,
                      int]] = {'mono8': (np.dtype(np.uint8), 1),
                               'mono16': (np.dtype(np.uint16), 1),
                               '16UC1': (np.dtype(np.uint16), 1),
                               '32FC1': (np.dtype(np.float32), 1), 'rgb8': (np.dtype(np.uint8), 3),
                               'bgr8': (np.dtype(np.uint8), 3), 'rgba8': (np.dtype(np.uint8), 4),
                               'bgra8': (np.dtype(np.uint8), 4)}


def encoding_spec(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f'Image.encoding: unsupported encoding {encoding!r} '
                         f"(supported: {', '.join(ENCODINGS)})") from None


def image_to_numpy(msg) -> np.ndarray:
    """Decode a sensor_msgs/Image into a numpy array (a copy, native byte order).

    Parameters
    ----------
    msg : sensor_msgs.msg.Image or any object with its fields
        ``height``, ``width``, ``encoding``, ``is_bigendian``, ``step``, ``data``.

    Returns
    -------
    ndarray
        Shape ``(height, width)`` for one channel, ``(height, width, C)`` otherwise, with the
        dtype of the encoding (see module table); channels in the encoding's order.

    Raises
    ------
    ValueError
        Naming the field: unsupported ``encoding``, zero or negative ``height``/``width``,
        ``step`` smaller than a row or not a whole number of pixels' bytes apart, ``data``
        shorter than ``step * height``.
    """
    dtype, channels = encoding_spec(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f'Image.height/width: image is empty ({width}x{height})')
    check_pixels(width, height, 'Image.height/width')
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f'Image.step: {step} bytes is less than one row of {width} '
                         f'{msg.encoding} '
                         f'pixels ({row_bytes} bytes)')
    data = msg.data
    buf = data if isinstance(data, (bytes, bytearray, memoryview)) else memoryview(data)
    nbytes = buf.nbytes if isinstance(buf, memoryview) else len(buf)
    if nbytes < step * height:
        raise ValueError(f'Image.data: {nbytes} bytes, expected step * height = {step} * {height} '
                         f'= {step * height}')
    if nbytes > step * height:
        raise ValueError(f'Image.data: {nbytes} bytes, more than step * height = {step * height}; '
                         'height, step or data is wrong')
    rows = np.frombuffer(buf, dtype=np.uint8, count=step * height).reshape(height, step)
    pixels = rows[:, :row_bytes]
    dt = dtype.newbyteorder('>' if msg.is_bigendian else '<') if dtype.itemsize > 1 else dtype
    arr = np.ascontiguousarray(pixels).view(dt).reshape(height, width, channels)
    arr = arr.astype(dtype, copy=True)  # native byte order, owns its memory
    return arr[:, :, 0] if channels == 1 else arr


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Colour image in any supported colour/mono encoding -> ``(H, W, 3)`` uint8 RGB."""
    dtype, channels = encoding_spec(encoding)
    a = np.asarray(array)
    if encoding == 'rgb8':
        return a
    if encoding == 'bgr8':
        return a[:, :, ::-1].copy()
    if encoding == 'rgba8':
        return a[:, :, :3].copy()
    if encoding == 'bgra8':
        return a[:, :, 2::-1].copy()
    if encoding == 'mono8':
        return np.repeat(a[:, :, None], 3, axis=2)
    raise ValueError(f'Image.encoding: {encoding!r} is not a colour encoding')


def camera_info_to_intrinsics(msg) -> CameraIntrinsics:
    """sensor_msgs/CameraInfo -> :class:`CameraIntrinsics` (from ``k``, ``d``, size).

    Raises
    ------
    ValueError
        Naming the field: zero ``width``/``height`` (an uncalibrated camera), ``k`` without a
        positive focal length, unsupported ``distortion_model`` with non-zero ``d``.
    """
    k = [float(v) for v in msg.k]
    if len(k) != 9:
        raise ValueError(f'CameraInfo.k: expected 9 values, got {len(k)}')
    if int(msg.width) <= 0 or int(msg.height) <= 0:
        raise ValueError(
            f'CameraInfo.width/height: {msg.width}x{msg.height}; the camera is not calibrated')
    if not (k[0] > 0 and k[4] > 0):
        raise ValueError(
            f'CameraInfo.k: focal lengths fx={k[0]}, fy={k[4]} must be > 0 (uncalibrated camera?)')
    try:
        return CameraIntrinsics(width=int(msg.width), height=int(msg.height), fx=k[0], fy=k[4],
                                cx=k[2], cy=k[5],
                                distortion_model=str(msg.distortion_model or 'plumb_bob'),
                                distortion=tuple(float(v) for v in msg.d))
    except ValueError as exc:
        raise ValueError(f'CameraInfo: {exc}') from None
