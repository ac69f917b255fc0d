"""A pile of logs at rest on the ground, with the relation "which log rests on which".

World frame: metres, z up, the ground is the plane z = 0. A log is a solid cylinder.

Piles are built by dropping logs one at a time. Each new log settles as low as it can while
staying clear of the ground and of every log already there: at points along its axis the
clearance gives the lowest height its axis may take there, and the log takes the lowest line
above all of them (a two-variable LP, so it rests with its centre of mass between its
supports, tilted where one end lies on a log and the other on the ground). The constraints
that hold with equality at the solution are the log's supports.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
import math

from grasp_autolabel.core.geometry import point_segment_distance
import numpy as np

__all__ = ['Log', 'Pile', 'build_pile', 'segment_distance_2d']


@dataclass(frozen=True)
class Log:
    """One log: a cylinder with flat end faces.

    Attributes
    ----------
    id : int
        1..254, also its value in instance maps (0 is the ground).
    centre : ndarray, shape (3,)
        Centre of the axis, metres, world frame.
    axis : ndarray, shape (3,)
        Unit vector along the axis.
    radius, length : float
        Metres.
    bark_seed : int
        Seeds the log's bark and end-grain texture.
    """

    id: int  # noqa: A003
    centre: np.ndarray
    axis: np.ndarray
    radius: float
    length: float
    bark_seed: int = 0

    @property
    def ends(self) -> np.ndarray:
        """The two axis end points, shape (2, 3)."""
        h = self.axis * (self.length / 2)
        return np.stack([self.centre - h, self.centre + h])

    def moved(self, translation, yaw: float = 0.0) -> 'Log':
        """Return the log shifted by ``translation`` (m) and turned by ``yaw`` (rad) about z."""
        c, s = math.cos(yaw), math.sin(yaw)
        rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        return replace(self, centre=self.centre + np.asarray(translation, float),
                       axis=rz @ self.axis)


@dataclass
class Pile:
    """Logs by id, and for each log the ids of the logs it rests on."""

    logs: dict[int, Log]
    supports: dict[int, set[int]] = field(default_factory=dict)

    def resting_on(self, log_id: int) -> set[int]:
        """Ids of the logs that rest on ``log_id``."""
        return {i for i, sup in self.supports.items() if log_id in sup and i in self.logs}

    def graspable(self) -> list[int]:
        """Return the logs nothing rests on: an expert may pick any without disturbing others."""
        return sorted(i for i in self.logs if not self.resting_on(i))

    def touching(self, log_id: int, *, gap: float = 0.01) -> list[int]:
        """Return the logs within ``gap`` metres of ``log_id`` (supports, dependents, others)."""
        a = self.logs[log_id]
        out = []
        for j, b in self.logs.items():
            if j == log_id:
                continue
            d = _segment_distance_3d(a.ends, b.ends)
            if d < a.radius + b.radius + gap:
                out.append(j)
        return out

    def remove(self, ids) -> 'Pile':
        ids = set(ids)
        return Pile({i: g for i, g in self.logs.items() if i not in ids},
                    {i: s - ids for i, s in self.supports.items() if i not in ids})

    def replace_logs(self, new_logs: dict[int, Log]) -> 'Pile':
        logs = dict(self.logs)
        logs.update(new_logs)
        return Pile(logs, {i: set(s) for i, s in self.supports.items()})


# --------------------------------------------------------------------------------------------
# distances
# --------------------------------------------------------------------------------------------
def segment_distance_2d(p0, p1, q0, q1) -> float:
    """Shortest distance between two 2-D segments."""
    p0, p1, q0, q1 = (np.asarray(v, float)[:2] for v in (p0, p1, q0, q1))
    if _segments_cross(p0, p1, q0, q1):
        return 0.0
    d1, _ = point_segment_distance(np.stack([p0, p1]), q0, q1)
    d2, _ = point_segment_distance(np.stack([q0, q1]), p0, p1)
    return float(min(d1.min(), d2.min()))


def _segments_cross(p0, p1, q0, q1) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    o1, o2 = orient(p0, p1, q0), orient(p0, p1, q1)
    o3, o4 = orient(q0, q1, p0), orient(q0, q1, p1)
    return (o1 * o2 < 0) and (o3 * o4 < 0)


def _segment_distance_3d(p: np.ndarray, q: np.ndarray, samples: int = 33) -> float:
    """Distance between 3-D segments p (2, 3) and q (2, 3) (dense sampling of one side)."""
    s = np.linspace(0, 1, samples)[:, None]
    pts = p[0] + s * (p[1] - p[0])
    qd = q[1] - q[0]
    denom = float(qd @ qd)
    t = np.clip(((pts - q[0]) @ qd) / denom, 0, 1) if denom > 0 else np.zeros(samples)
    return float(np.min(np.linalg.norm(pts - (q[0] + t[:, None] * qd), axis=1)))


# --------------------------------------------------------------------------------------------
# settling
# --------------------------------------------------------------------------------------------
_MAX_TILT = math.radians(25)
_SLOPES = np.tan(np.linspace(-_MAX_TILT, _MAX_TILT, 101))


def _settle(xy: np.ndarray, yaw: float, radius: float, length: float, logs: list[Log],
            samples: int = 41) -> tuple[np.ndarray, np.ndarray, set[int]]:
    """Rest a new log of given plan position and yaw on the ground and on ``logs``.

    Returns its centre, unit axis and the ids of the logs it rests on.
    """
    u = np.array([math.cos(yaw), math.sin(yaw)])
    slope = 0.0
    # A tilted log covers less ground than its length: solve, shorten the plan extent by the
    # tilt found, solve again (converges in two or three rounds).
    for _ in range(3):
        s = np.linspace(-length / 2, length / 2, samples) / math.sqrt(1 + slope * slope)
        pts = xy[None, :] + s[:, None] * u[None, :]
        # lowest allowed axis height at each sample point, and which log imposes it (0 = ground)
        need = np.full(samples, radius)
        who = np.zeros(samples, dtype=int)
        for log in logs:
            e = log.ends
            d, t = point_segment_distance(pts, e[0, :2], e[1, :2])
            reach = radius + log.radius
            close = d < reach
            if not np.any(close):
                continue
            z_other = e[0, 2] + t * (e[1, 2] - e[0, 2])
            h = np.where(close, z_other + np.sqrt(np.maximum(reach**2 - d**2, 0.0)), -np.inf)
            higher = h > need
            need = np.where(higher, h, need)
            who = np.where(higher, log.id, who)
        # lowest line z(s) = a + b s above every need, over admissible slopes b
        a_of_b = np.max(need[None, :] - _SLOPES[:, None] * s[None, :], axis=1)
        best = int(np.argmin(a_of_b))
        a, new_slope = a_of_b[best], _SLOPES[best]
        if new_slope == slope:
            break
        slope = new_slope
    active = np.abs(a + slope * s - need) < 2e-3
    supports = {int(i) for i in who[active] if i != 0}
    axis = np.array([u[0], u[1], slope]) / math.sqrt(1 + slope * slope)
    return np.array([xy[0], xy[1], a]), axis, supports


def build_pile(rng: np.random.Generator, n_logs: int, *,
               spread: tuple[float, float] = (0.55, 0.35),
               radius_range=(0.04, 0.12), length_range=(0.5, 1.5), main_yaw: float | None = None,
               yaw_jitter: float = math.radians(35), tries: int = 6) -> Pile:
    """Drop ``n_logs`` logs onto the ground around the origin and let each settle.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_logs : int
        1..254.
    spread : (float, float)
        Standard deviation of the drop position in x and y, metres.
    radius_range, length_range : (float, float)
        Metres; the issue's cell: radius 4-12 cm, length 0.5-1.5 m.
    main_yaw : float, optional
        The pile's main direction (logs are usually stacked roughly parallel); random if None.
    yaw_jitter : float
        Standard deviation of each log's yaw about the main direction, radians.
    tries : int
        Each log is dropped at this many random places and stays at the one where it rests
        lowest: a log placed on a crest rolls off into a hollow, so piles come out wide and
        low (a few layers), as real ones are, not as towers.
    """
    if not 1 <= n_logs <= 254:
        raise ValueError(f'n_logs: expected 1..254, got {n_logs}')
    if main_yaw is None:
        main_yaw = rng.uniform(-math.pi, math.pi)
    logs: list[Log] = []
    supports: dict[int, set[int]] = {}
    for i in range(1, n_logs + 1):
        radius = rng.uniform(*radius_range)
        length = rng.uniform(*length_range)
        yaw = main_yaw + rng.normal(0, yaw_jitter) if rng.random() < 0.85 else rng.uniform(
            -math.pi, math.pi)
        best = None
        for _ in range(max(1, tries)):
            xy = rng.normal(0, 1, 2) * np.asarray(spread)
            cand = _settle(xy, yaw, radius, length, logs)
            if best is None or cand[0][2] < best[0][2]:
                best = cand
        centre, axis, sup = best
        logs.append(Log(i, centre, axis, radius, length, bark_seed=int(rng.integers(2**31))))
        supports[i] = sup
    return Pile({g.id: g for g in logs}, supports)
