"""sensor_msgs/Image <-> numpy and CameraInfo <-> intrinsics (the cv_bridge these machines lack).

The readers take any object with the message's fields (an rclpy message, a `rosbags`
message, a test double), so bag export and nodes share them. The writers build rclpy messages.

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

import numpy as np

from grasp_autolabel.geometry import CameraIntrinsics

__all__ = [
    "ENCODINGS",
    "image_to_numpy",
    "numpy_to_image",
    "camera_info_to_intrinsics",
    "intrinsics_to_camera_info",
    "to_rgb8",
    "depth_to_metres",
    "metres_to_depth_units",
]

# encoding -> (dtype, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
}


def _spec(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise ValueError(f"Image.encoding: unsupported encoding {encoding!r} "
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
    dtype, channels = _spec(msg.encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ValueError(f"Image.height/width: image is empty ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise ValueError(f"Image.step: {step} bytes is less than one row of {width} {msg.encoding} "
                         f"pixels ({row_bytes} bytes)")
    data = msg.data
    buf = data if isinstance(data, (bytes, bytearray, memoryview)) else memoryview(data)
    nbytes = buf.nbytes if isinstance(buf, memoryview) else len(buf)
    if nbytes < step * height:
        raise ValueError(f"Image.data: {nbytes} bytes, expected step * height = {step} * {height} "
                         f"= {step * height}")
    if nbytes > step * height:
        raise ValueError(f"Image.data: {nbytes} bytes, more than step * height = {step * height}; "
                         "height, step or data is wrong")
    rows = np.frombuffer(buf, dtype=np.uint8, count=step * height).reshape(height, step)
    pixels = rows[:, :row_bytes]
    dt = dtype.newbyteorder(">" if msg.is_bigendian else "<") if dtype.itemsize > 1 else dtype
    arr = np.ascontiguousarray(pixels).view(dt).reshape(height, width, channels)
    arr = arr.astype(dtype, copy=True)  # native byte order, owns its memory
    return arr[:, :, 0] if channels == 1 else arr


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

    dtype, channels = _spec(encoding)
    a = np.asarray(array)
    if a.dtype != dtype:
        raise ValueError(f"array: dtype {a.dtype} does not match encoding {encoding!r} ({dtype})")
    if channels == 1 and a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    expected_ndim = 2 if channels == 1 else 3
    if a.ndim != expected_ndim or (channels > 1 and a.shape[2] != channels):
        raise ValueError(f"array: shape {a.shape} does not fit encoding {encoding!r} "
                         f"({channels} channel{'s' if channels > 1 else ''})")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"array: image is empty (shape {a.shape})")
    a = np.ascontiguousarray(a, dtype=dtype.newbyteorder("<"))
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(a.shape[0]), int(a.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(a.shape[1] * channels * dtype.itemsize)
    msg.data = a.tobytes()
    return msg


def to_rgb8(array: np.ndarray, encoding: str) -> np.ndarray:
    """Colour image in any supported colour/mono encoding -> ``(H, W, 3)`` uint8 RGB."""
    dtype, channels = _spec(encoding)
    a = np.asarray(array)
    if encoding == "rgb8":
        return a
    if encoding == "bgr8":
        return a[:, :, ::-1].copy()
    if encoding == "rgba8":
        return a[:, :, :3].copy()
    if encoding == "bgra8":
        return a[:, :, 2::-1].copy()
    if encoding == "mono8":
        return np.repeat(a[:, :, None], 3, axis=2)
    raise ValueError(f"Image.encoding: {encoding!r} is not a colour encoding")


def depth_to_metres(array: np.ndarray, encoding: str, *, depth_scale: float = 0.001) -> np.ndarray:
    """Depth image -> float32 metres, with invalid pixels as 0.

    Parameters
    ----------
    array : ndarray, shape (H, W)
    encoding : str
        ``16UC1``/``mono16`` (integer units of ``depth_scale`` metres, 0 = invalid) or ``32FC1``
        (metres; NaN, inf and <= 0 become 0).
    depth_scale : float
        Metres per unit for integer depth (RealSense: 0.001).
    """
    if encoding in ("16UC1", "mono16"):
        return np.asarray(array, dtype=np.float32) * np.float32(depth_scale)
    if encoding == "32FC1":
        d = np.asarray(array, dtype=np.float32)
        return np.where(np.isfinite(d) & (d > 0), d, np.float32(0))
    raise ValueError(f"Image.encoding: {encoding!r} is not a depth encoding (16UC1, mono16, 32FC1)")


def metres_to_depth_units(depth_m: np.ndarray, *, depth_scale: float = 0.001) -> np.ndarray:
    """Depth in metres (0 = invalid) -> uint16 units of ``depth_scale`` metres, clipped to range."""
    return np.clip(np.rint(np.asarray(depth_m) / depth_scale), 0, 65535).astype(np.uint16)


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
        raise ValueError(f"CameraInfo.k: expected 9 values, got {len(k)}")
    if int(msg.width) <= 0 or int(msg.height) <= 0:
        raise ValueError(f"CameraInfo.width/height: {msg.width}x{msg.height}; the camera is not calibrated")
    if not (k[0] > 0 and k[4] > 0):
        raise ValueError(f"CameraInfo.k: focal lengths fx={k[0]}, fy={k[4]} must be > 0 (uncalibrated camera?)")
    try:
        return CameraIntrinsics(width=int(msg.width), height=int(msg.height), fx=k[0], fy=k[4],
                                cx=k[2], cy=k[5], distortion_model=str(msg.distortion_model or "plumb_bob"),
                                distortion=tuple(float(v) for v in msg.d))
    except ValueError as exc:
        raise ValueError(f"CameraInfo: {exc}") from None


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
    msg.p = [float(i.fx), 0.0, float(i.cx), 0.0, 0.0, float(i.fy), float(i.cy), 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg
