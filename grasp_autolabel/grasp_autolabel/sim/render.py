"""Exact ray casting of a log pile: depth, instance map and a shaded RGB image.

Every pixel's ray is intersected with every cylinder (side and both end faces, in closed form)
and with the ground plane; the nearest hit wins. Depth is the camera z of the hit (what an
RGB-D camera reports), not the ray length. Each log is only tested against the pixels inside
its projected bounding box, which keeps a 640x480 frame at a few milliseconds per log.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

import cv2
from grasp_autolabel.core.camera import CameraIntrinsics
from grasp_autolabel.sim.scene import Log
import numpy as np

__all__ = ['Camera', 'Occluder', 'Render', 'render', 'look_at', 'GROUND_ID', 'OCCLUDER_ID']

GROUND_ID = 0
OCCLUDER_ID = 255


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Return the camera-to-world rotation for an optical frame at ``eye`` looking at ``target``.

    +x right, +y down, +z forward; image "up" is as close to world ``up`` as the view allows.
    """
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    up = np.asarray(up, float)
    x = np.cross(z, up)  # right = forward x up, with image down = -up
    if np.linalg.norm(x) < 1e-9:
        x = np.cross(z, [1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera in the world: intrinsics, position (m) and camera-to-world rotation."""

    intrinsics: CameraIntrinsics
    position: np.ndarray
    rotation: np.ndarray  # (3, 3), columns: camera x, y, z axes in world coordinates

    def world_to_camera(self, points) -> np.ndarray:
        return (np.asarray(points, float) - self.position) @ self.rotation

    def project(self, points) -> np.ndarray:
        """World points (..., 3) to pixels (..., 2); NaN behind the camera."""
        return self.intrinsics.project(self.world_to_camera(points))

    def rays(self) -> np.ndarray:
        """World ray directions (H, W, 3), scaled so that the ray parameter is camera z."""
        i = self.intrinsics
        u = (np.arange(i.width) - i.cx) / i.fx
        v = (np.arange(i.height) - i.cy) / i.fy
        d = np.empty((i.height, i.width, 3))
        d[..., 0], d[..., 1], d[..., 2] = u[None, :], v[:, None], 1.0
        return d @ self.rotation.T

    def moved(self, rotation_delta: np.ndarray, translation=(0.0, 0.0, 0.0)) -> 'Camera':
        """Return the camera knocked.

        Turned by ``rotation_delta`` (world frame) and shifted (m).
        """
        return Camera(self.intrinsics, self.position + np.asarray(translation, float),
                      rotation_delta @ self.rotation)


@dataclass(frozen=True)
class Occluder:
    """Something that is not a log: the operator's arm, as a cylinder (sleeve) in the view."""

    start: np.ndarray
    end: np.ndarray
    radius: float
    colour: tuple = (230, 110, 30)  # high-visibility orange sleeve


@dataclass
class Render:
    """One noiseless frame."""

    depth: np.ndarray  # (H, W) float64, camera z in metres (inf where nothing was hit)
    instances: np.ndarray  # (H, W) uint8: 0 ground, log id, 255 occluder
    rgb: np.ndarray  # (H, W, 3) uint8


# --------------------------------------------------------------------------------------------
# textures
# --------------------------------------------------------------------------------------------
_TEX_CACHE: dict = {}


def _smooth_noise(rng, shape, scale, wrap_x=False) -> np.ndarray:
    small = rng.normal(size=(max(2, shape[0] // scale),
                             max(2, shape[1] // scale))).astype(np.float32)
    if wrap_x:
        small[:, -1] = small[:, 0]
    big = cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return big / (big.std() + 1e-6)


_BARK_TEXELS = 256 * 128


def _bark_texture(seed: int) -> np.ndarray:
    """Return a log's colour lookup table, (3, 256 * 128 + 64) float32.

    Bark texels indexed by (position along the axis) * 128 + (angle around it), then 64 end-grain
    texels by radius.
    """
    key = ('bark', seed)
    if key in _TEX_CACHE:
        return _TEX_CACHE[key]
    rng = np.random.default_rng(seed)
    base = np.array([rng.uniform(70, 115), rng.uniform(50, 80), rng.uniform(30, 55)], np.float32)
    # furrows run along the axis: fine variation around the log, slow along it
    around = _smooth_noise(rng, (256, 128), 1)
    furrows = cv2.GaussianBlur(around, (1, 0), sigmaX=0.8, sigmaY=12)
    blotch = _smooth_noise(rng, (256, 128), 24)
    shade = 1.0 + 0.22 * furrows / (furrows.std() + 1e-6) + 0.12 * blotch
    bark = np.clip(base[None, None, :] * shade[..., None], 0, 255).astype(np.float32)
    light = np.array([rng.uniform(190, 225), rng.uniform(160, 190), rng.uniform(110, 140)],
                     np.float32)
    rings = np.linspace(0, 1, 64)
    n_rings = rng.uniform(12, 30)
    ring = 0.9 + 0.1 * np.sin(2 * math.pi * n_rings * rings + rng.uniform(0, 6.28))
    grain = light[None, :] * ring[:, None]
    grain[-5:] = base  # the bark ring around the cut face
    # one flat lookup table per channel: 256 x 128 bark texels, then 64 end-grain texels
    out = np.ascontiguousarray(np.concatenate([bark.reshape(-1, 3), grain],
                                              axis=0).T.astype(np.float32))
    if len(_TEX_CACHE) > 256:  # bounded: a camera node resetting piles for hours must not grow
        _TEX_CACHE.pop(next(k for k in _TEX_CACHE if k != 'ground'))
    _TEX_CACHE[key] = out
    return out


def _ground_texture():
    key = 'ground'
    if key not in _TEX_CACHE:
        rng = np.random.default_rng(12345)
        n = 1024  # covers 6 m x 6 m: ~6 mm per texel
        g = 0.55 * _smooth_noise(rng, (n, n), 64) + 0.3 * _smooth_noise(rng, (
            n, n), 8) + 0.25 * rng.normal(size=(n, n))
        base = np.array([118, 108, 92], np.float32)  # packed soil, gravel
        _TEX_CACHE[key] = np.clip(base[None, None, :] * (1 + 0.12 * g[..., None]), 0,
                                  255).astype(np.float32)
    return _TEX_CACHE[key]


_GROUND_EXTENT = 6.0
_LIGHT = np.array([0.35, -0.25, 0.90])
_LIGHT /= np.linalg.norm(_LIGHT)


# --------------------------------------------------------------------------------------------
# ray casting
# --------------------------------------------------------------------------------------------
def _footprint(camera: Camera, ends: np.ndarray, axis: np.ndarray, radius: float):
    """Pixels that may see a capped cylinder: its oriented bounding box, projected and filled.

    Returns the row and column offset of a window and the flat indices inside it, or None when
    the cylinder is out of view. Much tighter than an axis-aligned box for a diagonal log.
    """
    i = camera.intrinsics
    e1 = np.cross(axis, [0.0, 0.0, 1.0])
    if np.linalg.norm(e1) < 1e-6:
        e1 = np.cross(axis, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    r = radius * 1.01
    corners = np.array([e + sx * r * e1 + sy * r * e2 for e in ends for sx in (-1, 1) for sy in (
        -1, 1)])
    cam = camera.world_to_camera(corners)
    if np.any(cam[:, 2] <= 1e-3):  # crosses the camera plane: test the whole image
        return 0, 0, i.width, np.arange(i.width * i.height)
    uv = cam[:, :2] / cam[:, 2:3] * [i.fx, i.fy] + [i.cx, i.cy]
    u0, v0 = np.maximum(np.floor(uv.min(axis=0)).astype(int) - 2, 0)
    u1 = min(int(np.ceil(uv[:, 0].max())) + 3, i.width)
    v1 = min(int(np.ceil(uv[:, 1].max())) + 3, i.height)
    if u0 >= u1 or v0 >= v1:
        return None
    hull = cv2.convexHull(np.round((uv - [u0, v0]) * 16).astype(np.int32))
    mask = np.zeros((v1 - v0, u1 - u0), np.uint8)
    cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
    mask = cv2.dilate(mask,
                      np.ones((3, 3), np.uint8))  # the filled polygon rounds inwards at its edges
    return v0, u0, u1 - u0, np.flatnonzero(mask)


def _hit_cylinder(origin, dx, dy, dz, dd, centre, axis, radius, half_len):
    """Nearest hit of rays (components dx, dy, dz; dd = |d|^2) with a capped cylinder.

    Returns t (inf where missed), the hit's axial coordinate, and a flag for end-face hits.
    """
    w = origin - centre
    wa = float(w @ axis)
    w_perp = w - wa * axis
    da = dx * axis[0] + dy * axis[1] + dz * axis[2]
    A = dd - da * da
    B = dx * w_perp[0] + dy * w_perp[1] + dz * w_perp[2]
    C = float(w_perp @ w_perp) - radius * radius
    disc = B * B - A * C
    with np.errstate(invalid='ignore', divide='ignore'):
        ts = (-B - np.sqrt(disc)) / A
        axial = wa + ts * da
        t = np.where((disc >= 0) & (A > 1e-12) & (ts > 0) & (np.abs(axial) <= half_len), ts,
                     np.inf)
        cap = np.zeros(len(dx), dtype=bool)
        for sgn in (-1.0, 1.0):
            tc = (sgn * half_len - wa) / da
            rad2 = C + radius * radius + 2 * tc * B + tc * tc * A
            ok = (tc > 0) & (rad2 <= radius * radius) & (tc < t)
            t = np.where(ok, tc, t)
            cap |= ok
        axial = wa + t * da
    return t, axial, cap


def render(camera: Camera, logs: list[Log] | dict, *, occluders: tuple = (),
           rays: np.ndarray | None = None) -> Render:
    """Ray-cast the scene into depth, instance map and RGB.

    Parameters
    ----------
    camera : Camera
    logs : list of Log (or a dict of them)
    occluders : sequence of Occluder
        Shown with instance id 255.
    rays : ndarray, optional
        ``camera.rays()``, passed in to save recomputing it for a fixed camera.
    """
    if isinstance(logs, dict):
        logs = list(logs.values())
    intr = camera.intrinsics
    H, W = intr.height, intr.width
    o = camera.position
    g = _ground(camera, camera.rays() if rays is None else rays)
    depth = g.depth.copy()
    planes = [c.copy() for c in g.rgb_planes]  # R, G, B as flat float32 arrays
    inst = np.zeros(H * W, np.uint8)

    for sid, centre, axis, radius, half_len, obj in _solids(logs, occluders):
        ends = np.stack([centre - axis * half_len, centre + axis * half_len])
        foot = _footprint(camera, ends, axis, radius)
        if foot is None:
            continue
        v0, u0, win_w, flat = foot
        rows_all, cols_all = np.divmod(flat, win_w)
        pix = (rows_all + v0) * W + (cols_all + u0)  # flat image indices
        dx, dy, dz, dd = g.dx[pix], g.dy[pix], g.dz[pix], g.dd[pix]
        t, axial, cap = _hit_cylinder(o, dx, dy, dz, dd, centre, axis, radius, half_len)
        win = t < depth[pix]
        if not np.any(win):
            continue
        idx = np.flatnonzero(win)
        tw, ax_c, cap_i = t[idx], axial[idx], cap[idx]
        # radial vector from the axis to the hit, per component: w + t d - axial * axis
        w = o - centre
        rx = w[0] + tw * dx[idx] - ax_c * axis[0]
        ry = w[1] + tw * dy[idx] - ax_c * axis[1]
        rz = w[2] + tw * dz[idx] - ax_c * axis[2]
        side_light = (rx * _LIGHT[0] + ry * _LIGHT[1] + rz * _LIGHT[2]) / radius
        cap_light = np.sign(ax_c) * float(axis @ _LIGHT)
        shade = (0.38 + 0.62 * np.clip(np.where(cap_i, cap_light, side_light), 0.0,
                                       1.0)).astype(np.float32)
        hit = pix[idx]
        depth[hit] = tw
        inst[hit] = sid
        if isinstance(obj, Occluder):
            for k in range(3):
                planes[k][hit] = obj.colour[k] * shade
            continue
        lut = _bark_texture(obj.bark_seed)
        tex_index = _bark_index(axis, radius, half_len, rx, ry, rz, ax_c, cap_i)
        for k in range(3):
            planes[k][hit] = lut[k][tex_index] * shade
    rgb = np.clip(np.stack([p.reshape(H, W) for p in planes], axis=2), 0, 255).astype(np.uint8)
    return Render(depth.reshape(H, W), inst.reshape(H, W), rgb)


def _solids(logs, occluders) -> list:
    """Every cylinder to cast: ``(id, centre, axis, radius, half length, object)``."""
    solids = [(lg.id, lg.centre, lg.axis, lg.radius, lg.length / 2, lg) for lg in logs]
    for occ in occluders:
        c = (np.asarray(occ.start) + np.asarray(occ.end)) / 2
        ax = np.asarray(occ.end, float) - np.asarray(occ.start, float)
        L = float(np.linalg.norm(ax))
        solids.append((OCCLUDER_ID, c, ax / L, occ.radius, L / 2, occ))
    return solids


def _bark_index(axis, radius: float, half_len: float, rx, ry, rz, ax_c, cap_i) -> np.ndarray:
    """Texel of each hit on a log.

    Bark by (position along the axis, angle around it), rings on the end caps by distance from the
    axis.
    """
    e1 = np.cross(axis, [0.0, 0.0, 1.0])
    if np.linalg.norm(e1) < 1e-6:
        e1 = np.cross(axis, [1.0, 0.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(axis, e1)
    phi = np.arctan2(rx * e2[0] + ry * e2[1] + rz * e2[2], rx * e1[0] + ry * e1[1] + rz * e1[2])
    si = np.clip(((ax_c / (2 * half_len) + 0.5) * 255).astype(np.int32), 0, 255)
    pj = ((phi * (1 / (2 * math.pi)) + 0.5) * 127).astype(np.int32) % 128
    tex_index = si * 128 + pj
    if np.any(cap_i):
        rho = np.sqrt(rx[cap_i] ** 2 + ry[cap_i] ** 2 + rz[cap_i] ** 2) / radius
        tex_index[cap_i] = _BARK_TEXELS + np.clip((rho * 63).astype(np.int32), 0, 63)
    return tex_index


def _shade(normals: np.ndarray) -> np.ndarray:
    """Lambert shading with an ambient term, for unit normals (N, 3)."""
    return (0.38 + 0.62 * np.clip(normals @ _LIGHT, 0.0, 1.0)).astype(np.float32)


_GROUND_CACHE: dict = {}


@dataclass
class _GroundView:
    """Per-camera constants: flat ray components, |d|^2, the bare ground's depth and colour."""

    dx: np.ndarray
    dy: np.ndarray
    dz: np.ndarray
    dd: np.ndarray
    depth: np.ndarray
    rgb_planes: tuple


def _ground(camera: Camera, dirs: np.ndarray) -> _GroundView:
    """Rays and the bare ground for a camera (cached: the camera is static between knocks)."""
    key = (camera.position.tobytes(), camera.rotation.tobytes(), camera.intrinsics)
    hit = _GROUND_CACHE.get(key)
    if hit is not None:
        return hit
    o = camera.position
    with np.errstate(divide='ignore', invalid='ignore'):
        t = np.where(dirs[..., 2] < -1e-9, -o[2] / dirs[..., 2], np.inf)
    valid = np.isfinite(t)
    tex = _ground_texture()
    n = tex.shape[0]
    gx = np.where(valid, o[0] + t * dirs[..., 0], 0.0)
    gy = np.where(valid, o[1] + t * dirs[..., 1], 0.0)
    gi = np.clip(((gx / _GROUND_EXTENT + 0.5) * n), 0, n - 1).astype(np.int32)
    gj = np.clip(((gy / _GROUND_EXTENT + 0.5) * n), 0, n - 1).astype(np.int32)
    rgb = tex[gj, gi] * (0.38 + 0.62 * max(_LIGHT[2], 0.0))
    rgb[~valid] = 128
    flat = dirs.reshape(-1, 3)
    view = _GroundView(np.ascontiguousarray(flat[:, 0]), np.ascontiguousarray(flat[:, 1]),
                       np.ascontiguousarray(flat[:, 2]), np.einsum('ij,ij->i', flat, flat),
                       t.reshape(-1), tuple(np.ascontiguousarray(rgb[..., k].reshape(-1),
                                                                 np.float32) for k in range(3)))
    if len(_GROUND_CACHE) >= 8:
        _GROUND_CACHE.pop(next(iter(_GROUND_CACHE)))
    _GROUND_CACHE[key] = view
    return view
