"""The camera's mounting: where the camera optical frame sits in the robot's base frame.

A hand-eye calibration gives it as a translation and a rotation (a quaternion, or a 3x3 matrix);
:class:`Mounting` checks that it is a rigid transform and carries grasp poses from the camera
optical frame (REP 103: +x right, +y down, +z along the optical axis) into the base frame, with
the tool-centre-point offset, the approach and retreat a pick pipeline needs (numpy only).
"""
from __future__ import annotations

from dataclasses import dataclass
import math

from grasp_autolabel.core.errors import MountingError
import numpy as np

__all__ = ['Mounting', 'MountingError', 'quaternion_to_matrix', 'matrix_to_quaternion',
           'PickGeometry', 'pick_geometry']

# A rotation whose columns are this far from orthonormal (or a quaternion this far from unit
# length) is not a calibration's output but a typo: refused, never silently normalised.
_TOLERANCE = 1e-3


def quaternion_to_matrix(q) -> np.ndarray:
    """Return the rotation matrix of a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quaternion(r) -> np.ndarray:
    """Return the unit quaternion ``(x, y, z, w)`` of rotation matrices ``(..., 3, 3)``, w >= 0."""
    r = np.asarray(r, dtype=np.float64)
    m = r.reshape(-1, 3, 3)
    out = np.empty((len(m), 4))
    for i, a in enumerate(m):
        # Shepperd's method: divide by the largest of the four candidate terms
        t = np.trace(a)
        k = int(np.argmax([t, a[0, 0], a[1, 1], a[2, 2]]))
        if k == 0:
            s = math.sqrt(max(t + 1.0, 0.0)) * 2
            q = [(a[2, 1] - a[1, 2]) / s, (a[0, 2] - a[2, 0]) / s, (a[1, 0] - a[0, 1]) / s, s / 4]
        elif k == 1:
            s = math.sqrt(max(1.0 + a[0, 0] - a[1, 1] - a[2, 2], 0.0)) * 2
            q = [s / 4, (a[0, 1] + a[1, 0]) / s, (a[0, 2] + a[2, 0]) / s, (a[2, 1] - a[1, 2]) / s]
        elif k == 2:
            s = math.sqrt(max(1.0 + a[1, 1] - a[0, 0] - a[2, 2], 0.0)) * 2
            q = [(a[0, 1] + a[1, 0]) / s, s / 4, (a[1, 2] + a[2, 1]) / s, (a[0, 2] - a[2, 0]) / s]
        else:
            s = math.sqrt(max(1.0 + a[2, 2] - a[0, 0] - a[1, 1], 0.0)) * 2
            q = [(a[0, 2] + a[2, 0]) / s, (a[1, 2] + a[2, 1]) / s, s / 4, (a[1, 0] - a[0, 1]) / s]
        q = np.asarray(q)
        q /= np.linalg.norm(q)
        out[i] = -q if q[3] < 0 else q
    return out.reshape(r.shape[:-2] + (4,))


def _quaternions_to_matrices(q: np.ndarray) -> np.ndarray:
    return np.stack([quaternion_to_matrix(v) for v in q]) if len(q) else np.zeros((0, 3, 3))


@dataclass(frozen=True)
class Mounting:
    """The camera optical frame's pose in the robot's base frame.

    Attributes
    ----------
    base_frame : str
        The robot's frame the poses are given in (e.g. ``base_link``).
    camera_frame : str
        The camera optical frame (the images' ``frame_id``).
    translation : ndarray, shape (3,)
        The optical frame's origin in ``base_frame``, metres.
    rotation : ndarray, shape (3, 3)
        Its axes in ``base_frame`` (columns: optical x, y, z), so that a point ``p`` in the
        camera frame is ``rotation @ p + translation`` in the base frame.
    """

    base_frame: str
    camera_frame: str
    translation: np.ndarray
    rotation: np.ndarray

    @classmethod
    def from_values(cls, base_frame: str, camera_frame: str, translation, rotation,
                    *, name: str = 'mounting') -> 'Mounting':
        """Build a mounting from a calibration's numbers, checking that it is rigid.

        Parameters
        ----------
        translation : sequence of 3 floats
            Metres.
        rotation : sequence of 4 or 9 floats
            A unit quaternion ``(x, y, z, w)`` or a row-major 3x3 rotation matrix.
        name : str
            How the values are named in an error (a parameter prefix, a file).

        Raises
        ------
        MountingError
            For empty frame names, a translation that is not 3 finite numbers, a zero or
            non-unit quaternion, or a matrix that is not orthonormal with determinant +1.
        """
        if not str(base_frame).strip() or not str(camera_frame).strip():
            raise MountingError(f'{name}: base_frame and camera_frame must be named '
                                f'(got {base_frame!r}, {camera_frame!r})')
        t = np.asarray(list(translation), dtype=np.float64)
        if t.shape != (3,) or not np.all(np.isfinite(t)):
            raise MountingError(f'{name}_translation = {list(translation)}: expected 3 finite '
                                'numbers (x, y, z in metres)')
        r = np.asarray(list(rotation), dtype=np.float64)
        if not np.all(np.isfinite(r)):
            raise MountingError(f'{name}_rotation = {list(rotation)}: not finite (NaN or inf)')
        if r.shape == (4,):
            norm = float(np.linalg.norm(r))
            if norm < 1e-9:
                raise MountingError(f'{name}_rotation = {r.tolist()}: a zero quaternion is no '
                                    'rotation')
            if abs(norm - 1.0) > _TOLERANCE:
                raise MountingError(f'{name}_rotation = {r.tolist()}: the quaternion has length '
                                    f'{norm:.4f}, not 1: not a rotation (x, y, z, w)')
            matrix = quaternion_to_matrix(r / norm)
        elif r.shape == (9,):
            matrix = r.reshape(3, 3)
            error = float(np.abs(matrix.T @ matrix - np.eye(3)).max())
            if error > _TOLERANCE:
                raise MountingError(f'{name}_rotation: the 3x3 matrix is not orthonormal '
                                    f'(|R^T R - I| = {error:.3g}): not a rigid transform')
            if np.linalg.det(matrix) < 0:
                raise MountingError(f'{name}_rotation: the 3x3 matrix has determinant -1: a '
                                    'reflection, not a rotation')
        else:
            raise MountingError(f'{name}_rotation: {len(r)} numbers; expected a quaternion '
                                '(x, y, z, w) or a row-major 3x3 matrix (9 numbers)')
        # re-orthonormalise within the tolerance, so transformed poses are exactly rigid
        u, _, vt = np.linalg.svd(matrix)
        return cls(str(base_frame), str(camera_frame), t, u @ vt)

    @classmethod
    def identity(cls, frame: str) -> 'Mounting':
        """Return no mounting: the base frame is the camera frame itself."""
        return cls(frame, frame, np.zeros(3), np.eye(3))

    @property
    def quaternion(self) -> np.ndarray:
        """Return the rotation as a unit quaternion ``(x, y, z, w)``."""
        return matrix_to_quaternion(self.rotation)

    def points_to_base(self, points) -> np.ndarray:
        """Return points ``(..., 3)`` of the camera frame in the base frame."""
        return np.asarray(points, dtype=np.float64) @ self.rotation.T + self.translation

    def directions_to_base(self, vectors) -> np.ndarray:
        """Return directions ``(..., 3)`` of the camera frame in the base frame."""
        return np.asarray(vectors, dtype=np.float64) @ self.rotation.T

    def poses_to_base(self, positions, quaternions) -> tuple[np.ndarray, np.ndarray]:
        """Return poses ``(N, 3), (N, 4)`` of the camera frame in the base frame."""
        p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
        if not len(q):
            return self.points_to_base(p), np.zeros((0, 4))
        return self.points_to_base(p), matrix_to_quaternion(
            self.rotation @ _quaternions_to_matrices(q))


@dataclass(frozen=True)
class PickGeometry:
    """What a pick pipeline needs of each grasp, in the base frame (arrays over N grasps).

    ``positions``/``orientations`` are the TCP poses at the grasp (z = approach into the pile,
    x = closing direction); ``approach`` the unit approach direction (the pose's z axis); the
    same poses in the camera frame are ``camera_positions``/``orientations_camera``; ``offered`` is
    False where the gripper cannot open to the grasp's opening.
    """

    positions: np.ndarray  # (N, 3) m, base frame
    orientations: np.ndarray  # (N, 4) x, y, z, w, base frame
    approach: np.ndarray  # (N, 3) unit, base frame
    camera_positions: np.ndarray  # (N, 3) m, camera frame
    orientations_camera: np.ndarray  # (N, 4) x, y, z, w, camera frame
    offered: np.ndarray  # (N,) bool


def pick_geometry(mounting: Mounting, positions, quaternions, opening_m, *,
                  tcp_depth_ratio: float, stroke_m: float) -> PickGeometry:
    """Return the TCP pose of each grasp in the base frame and whether it is offered.

    Parameters
    ----------
    positions, quaternions : array_like, shapes (N, 3), (N, 4)
        Grasp poses in the camera frame: the surface point under the rectangle centre, z along
        the optical axis (``camera.grasp_poses``).
    opening_m : array_like, shape (N,)
        The opening of each grasp, metres.
    tcp_depth_ratio : float
        The TCP lies this fraction of the opening beyond the surface along the line of sight
        (where the jaws must close: for a round log seen with the labels' 1.3 opening margin,
        0.385 is its axis); 0 keeps the surface point.
    stroke_m : float
        The gripper's largest opening; a grasp needing more is not offered.
    """
    p = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    opening = np.asarray(opening_m, dtype=np.float64).reshape(-1)
    rot = _quaternions_to_matrices(q)
    approach_cam = rot[:, :, 2] if len(rot) else np.zeros((0, 3))
    depth = np.where(np.isfinite(opening), tcp_depth_ratio * opening, 0.0)
    # deeper along the line of sight, not the optical axis: the rectangle's centre is where the
    # log's axis projects, so its axis lies on that ray (off the optical axis the two differ by
    # depth x tan(view angle): 2-3 cm at 15 deg, a jaw on the log)
    norm = np.linalg.norm(p, axis=1, keepdims=True)
    sight = np.divide(p, norm, out=np.zeros_like(p), where=norm > 0)
    cam_p = p + sight * depth[:, None]
    base_p, base_q = mounting.poses_to_base(cam_p, q)
    offered = np.isfinite(opening) & (opening > 0) & (opening <= stroke_m)
    return PickGeometry(base_p, base_q, mounting.directions_to_base(approach_cam), cam_p, q,
                        offered)
