"""The camera.

Pinhole intrinsics with distortion, depth under a pixel, and grasps in 3-D in the camera's optical
frame (REP 103: +x right, +y down, +z along the optical axis; numpy only).
"""
from __future__ import annotations

from dataclasses import dataclass, field
import math

from grasp_autolabel.core.geometry import as_grasps
import numpy as np

__all__ = ['CameraIntrinsics', 'same_camera', 'depth_at', 'GraspPose', 'grasp_pose', 'grasp_poses']


# --------------------------------------------------------------------------------------------
# Camera geometry
# --------------------------------------------------------------------------------------------
_DISTORTION_MODELS = ('plumb_bob', 'rational_polynomial')


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the (colour, depth-aligned) image, with optional lens distortion.

    Parameters
    ----------
    width, height : int
        Image size in pixels.
    fx, fy : float
        Focal lengths in pixels.
    cx, cy : float
        Principal point in pixels.
    distortion_model : str
        ``"plumb_bob"`` (k1, k2, p1, p2, k3) or ``"rational_polynomial"`` (k1, k2, p1, p2,
        k3, k4, k5, k6), as in sensor_msgs/CameraInfo.
    distortion : tuple of float
        The coefficients; empty or all zero for an undistorted (rectified) image.
    """

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = 'plumb_bob'
    distortion: tuple = field(default_factory=tuple)

    def __post_init__(self):
        for name in ('width', 'height'):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f'CameraIntrinsics.{name}: must be a positive integer, got {v!r}')
        for name in ('fx', 'fy'):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(
                    f'CameraIntrinsics.{name}: focal length must be finite and > 0, got {v!r}')
        for name in ('cx', 'cy'):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f'CameraIntrinsics.{name}: must be finite')
        d = tuple(float(c) for c in self.distortion)
        object.__setattr__(self, 'distortion', d)
        if any(d):
            if self.distortion_model not in _DISTORTION_MODELS:
                raise ValueError(f'CameraIntrinsics.distortion_model: {self.distortion_model!r} '
                                 'is not '
                                 f'supported (use one of {_DISTORTION_MODELS} or an undistorted '
                                 'image)')
            if len(d) < 4 or len(d) > 8:
                raise ValueError(
                    f'CameraIntrinsics.distortion: expected 4 to 8 coefficients, got {len(d)}')

    @property
    def K(self) -> np.ndarray:
        """The 3x3 camera matrix."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]],
                        dtype=np.float64)

    @property
    def is_distorted(self) -> bool:
        return any(self.distortion)

    def _coeffs(self):
        d = list(self.distortion) + [0.0] * (8 - len(self.distortion))
        return d  # k1, k2, p1, p2, k3, k4, k5, k6

    def _distort(self, xn, yn):
        k1, k2, p1, p2, k3, k4, k5, k6 = self._coeffs()
        r2 = xn * xn + yn * yn
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = xn * radial + 2 * p1 * xn * yn + p2 * (r2 + 2 * xn * xn)
        yd = yn * radial + p1 * (r2 + 2 * yn * yn) + 2 * p2 * xn * yn
        return xd, yd

    def _undistort(self, xd, yd, iterations: int = 20):
        # Fixed-point inversion of the distortion model (as OpenCV's undistortPoints does).
        k1, k2, p1, p2, k3, k4, k5, k6 = self._coeffs()
        xn, yn = xd.copy(), yd.copy()
        for _ in range(iterations):
            r2 = xn * xn + yn * yn
            radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
            dx = 2 * p1 * xn * yn + p2 * (r2 + 2 * xn * xn)
            dy = p1 * (r2 + 2 * yn * yn) + 2 * p2 * xn * yn
            xn = (xd - dx) / radial
            yn = (yd - dy) / radial
        return xn, yn

    def deproject(self, u, v, z) -> np.ndarray:
        """Pixel coordinates and depth to points in the camera optical frame.

        Parameters
        ----------
        u, v : float or array_like
            Pixel column and row.
        z : float or array_like
            Depth along the optical axis, metres (not the ray length).

        Returns
        -------
        ndarray, shape (..., 3)
            ``(X, Y, Z)`` in metres: +X right, +Y down, +Z forward (REP 103 optical frame).
        """
        u, v, z = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (u, v, z)))
        xn = (u - self.cx) / self.fx
        yn = (v - self.cy) / self.fy
        if self.is_distorted:
            xn, yn = self._undistort(xn, yn)
        return np.stack([xn * z, yn * z, z], axis=-1)

    def project(self, points) -> np.ndarray:
        """Points in the camera optical frame (metres) to pixel coordinates ``(u, v)``.

        Points at or behind the camera (Z <= 0) give NaN.
        """
        p = np.asarray(points, dtype=np.float64)
        if p.shape[-1] != 3:
            raise ValueError(f'points: expected shape (..., 3), got {p.shape}')
        z = p[..., 2]
        with np.errstate(divide='ignore', invalid='ignore'):
            xn = np.where(z > 0, p[..., 0] / z, np.nan)
            yn = np.where(z > 0, p[..., 1] / z, np.nan)
        if self.is_distorted:
            xn, yn = self._distort(xn, yn)
        return np.stack([xn * self.fx + self.cx, yn * self.fy + self.cy], axis=-1)


def same_camera(a: CameraIntrinsics, b: CameraIntrinsics, tol: float = 1e-6) -> bool:
    """Tell whether two cameras have the same image size and intrinsics.

    Distortion is compared with missing coefficients as 0.
    """
    if (a.width, a.height) != (b.width, b.height):
        return False
    if max(abs(a.fx - b.fx), abs(a.fy - b.fy), abs(a.cx - b.cx), abs(a.cy - b.cy)) > tol:
        return False
    n = max(len(a.distortion), len(b.distortion))
    da = list(a.distortion) + [0.0] * (n - len(a.distortion))
    db = list(b.distortion) + [0.0] * (n - len(b.distortion))
    return all(abs(x - y) <= tol for x, y in zip(da, db))


def depth_at(depth_m, x: float, y: float, *, radius: int = 3) -> float:
    """Robust depth at a pixel: the median of the valid depths in a window around it.

    Parameters
    ----------
    depth_m : ndarray, shape (H, W), float
        Depth in metres; 0 or NaN marks an invalid pixel (a hole).
    x, y : float
        Pixel column and row.
    radius : int
        Half-size of the square window, pixels.

    Returns
    -------
    float
        Metres, or NaN when the window has no valid pixel or lies outside the image.
    """
    d = np.asarray(depth_m)
    if d.ndim != 2:
        raise ValueError(f'depth_m: expected a 2-D image, got shape {d.shape}')
    if not (np.isfinite(x) and np.isfinite(y)):
        return float('nan')
    xi, yi = int(round(x)), int(round(y))
    y0, y1 = max(yi - radius, 0), min(yi + radius + 1, d.shape[0])
    x0, x1 = max(xi - radius, 0), min(xi + radius + 1, d.shape[1])
    if y0 >= y1 or x0 >= x1:
        return float('nan')
    win = d[y0:y1, x0:x1].astype(np.float64).ravel()
    win = win[np.isfinite(win) & (win > 0)]
    return float(np.median(win)) if win.size else float('nan')


@dataclass(frozen=True)
class GraspPose:
    """A grasp in 3-D, camera optical frame (see GraspRect.msg)."""

    position: np.ndarray  # (3,) metres
    orientation: np.ndarray  # (4,) quaternion x, y, z, w
    opening_m: float
    valid: bool


def grasp_pose(grasp, z: float, intrinsics: CameraIntrinsics) -> GraspPose:
    """Return the 3-D pose of a grasp rectangle seen at depth ``z``.

    Orientation: z axis along the optical axis (the approach, into the scene), x axis along the
    closing direction, y = z x x. The closing direction in 3-D is the direction between the two
    jaw centres deprojected at depth ``z``, so unequal focal lengths and lens distortion are
    accounted for.

    Parameters
    ----------
    grasp : array_like, shape (5,)
        ``[x, y, theta, w, h]``.
    z : float
        Depth at the grasp centre, metres; NaN or <= 0 gives an invalid pose.
    intrinsics : CameraIntrinsics

    Returns
    -------
    GraspPose
    """
    return grasp_poses(as_grasps(grasp)[:1], [z], intrinsics)[0]


def grasp_poses(grasps, z, intrinsics: CameraIntrinsics) -> list[GraspPose]:
    """:func:`grasp_pose` for many grasps at once.

    Parameters
    ----------
    grasps : array_like, shape (N, 5)
    z : array_like, shape (N,)
        Depth at each grasp's centre, metres (NaN or <= 0: invalid pose).
    """
    g = as_grasps(grasps)
    z = np.asarray(z, dtype=np.float64).reshape(-1)
    if len(z) != len(g):
        raise ValueError(f'z: {len(z)} depths for {len(g)} grasps')
    if len(g) == 0:
        return []
    d = np.column_stack([np.cos(g[:, 2]), np.sin(g[:, 2])])
    half = d * (g[:, 3:4] / 2)
    zz = np.where(np.isfinite(z) & (z > 0), z, 1.0)
    centre = intrinsics.deproject(g[:, 0], g[:, 1], zz)
    j0 = intrinsics.deproject(g[:, 0] - half[:, 0], g[:, 1] - half[:, 1], zz)
    j1 = intrinsics.deproject(g[:, 0] + half[:, 0], g[:, 1] + half[:, 1], zz)
    closing = j1 - j0
    opening = np.linalg.norm(closing, axis=1)
    phi = np.where(opening > 0, np.arctan2(closing[:, 1], closing[:, 0]),
                   np.arctan2(d[:, 1], d[:, 0]))
    out = []
    for i in range(len(g)):
        if np.isfinite(z[i]) and z[i] > 0:
            quat = np.array([0.0, 0.0, math.sin(phi[i] / 2), math.cos(phi[i] / 2)])
            out.append(GraspPose(centre[i], quat, float(opening[i]), True))
        else:
            out.append(GraspPose(np.full(3, np.nan), np.array([0.0, 0.0, 0.0, 1.0]), float('nan'),
                                 False))
    return out
