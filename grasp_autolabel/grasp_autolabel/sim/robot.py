"""The simulated robot's grasp, judged from the simulator's own truth.

A parallel-jaw gripper moves its tool centre point (TCP: midway between the fingertips) to a pose
(``approach`` = the direction it moves in along, ``closing`` = the line joining the jaws), opens
to ``opening_m`` and closes. :func:`judge_grasp` says whether the log between the jaws comes out,
or why not, from the pile's geometry alone: which log the jaws straddle, whether anything rests
on it, the angle between the closing direction and its axis, its width along the closing line,
how far down the fingertips reach, and whether a finger lands on a log lying higher than the
grasped one (a neighbour at the same level rolls aside) or in the ground.
"""
from __future__ import annotations

from dataclasses import dataclass
import math

from grasp_autolabel.sim.scene import Pile
import numpy as np

__all__ = ['Gripper', 'GraspOutcome', 'judge_grasp', 'MISS_CAUSES']

# Every cause of a miss, in the order they are checked.
MISS_CAUSES = ('no_log', 'beyond_stroke', 'not_free', 'not_across', 'too_narrow', 'off_centre',
               'too_shallow', 'too_deep', 'past_end', 'jaw_collision')


@dataclass(frozen=True)
class Gripper:
    """A parallel-jaw log gripper.

    Attributes
    ----------
    stroke_m : float
        Largest opening.
    finger_length_m : float
        How far the fingers reach back from the fingertips along the approach.
    finger_thickness_m : float
        Each finger's thickness along the closing direction.
    jaw_m : float
        Each jaw's size along the log (the labels' ``jaw_width_m``).
    min_angle_deg : float
        Smallest angle between the closing direction and the log's axis that still holds
        (90: square across).
    """

    stroke_m: float = 0.35
    finger_length_m: float = 0.25
    finger_thickness_m: float = 0.02
    jaw_m: float = 0.08
    min_angle_deg: float = 60.0


@dataclass(frozen=True)
class GraspOutcome:
    """The verdict: ``held`` or one of :data:`MISS_CAUSES`, the log acted on, and why."""

    outcome: str
    log_id: int  # -1: no log between the jaws
    message: str

    @property
    def held(self) -> bool:
        return self.outcome == 'held'


def _line_to_segment(p: np.ndarray, d: np.ndarray, a: np.ndarray, b: np.ndarray):
    """Return ``(distance, t, s)``: the closest points of the line p + t d and segment a-b.

    ``s`` in [0, 1] along the segment.
    """
    u = b - a
    w0 = p - a
    uu, ud, dd = float(u @ u), float(u @ d), float(d @ d)
    uw, dw = float(u @ w0), float(d @ w0)
    den = uu * dd - ud * ud
    s = (uw * dd - ud * dw) / den if den > 1e-12 else 0.0
    s = min(max(s, 0.0), 1.0)
    q = a + s * u
    t = float((q - p) @ d) / dd
    return float(np.linalg.norm(p + t * d - q)), t, s


def _blocking(top: np.ndarray, tip: np.ndarray, other, reach: float, up: np.ndarray,
              above: float, samples: int = 17) -> bool:
    """Return whether the finger top-tip passes through ``other`` where it lies above ``above``.

    Heights along ``up``. A neighbour at the grasped log's own level rolls aside as a finger
    wedges in; one whose axis lies above the grasped log's top blocks the finger.
    """
    s = np.linspace(0.0, 1.0, samples)[:, None]
    pts = top + s * (tip - top)
    e = other.ends
    u = e[1] - e[0]
    uu = float(u @ u)
    t = np.clip((pts - e[0]) @ u / uu, 0.0, 1.0) if uu > 0 else np.zeros(samples)
    nearest = e[0] + t[:, None] * u
    hit = np.linalg.norm(pts - nearest, axis=1) < other.radius + reach
    return bool(np.any(hit & (nearest @ up > above)))


def _straddled(pile: Pile, tcp: np.ndarray, a: np.ndarray, half: float):
    """Return ``(log, s)``: the log whose axis passes nearest the approach line, within reach.

    ``s`` in [0, 1] along its axis; None when no log reaches between the open jaws.
    """
    best = None
    for log in pile.logs.values():
        e = log.ends
        dist, _, s = _line_to_segment(tcp, a, e[0], e[1])
        if dist <= half + log.radius and (best is None or dist < best[0]):
            best = (dist, log, s)
    return None if best is None else best[1:]


def _finger_blocker(pile: Pile, log, q: np.ndarray, fingers, a: np.ndarray,
                    gripper: Gripper) -> int | None:
    """Return the id of a log lying higher than ``log`` where a finger goes down, or None."""
    up = -a
    log_top = float(q @ up) + log.radius
    for f in fingers:
        top = f + up * gripper.finger_length_m
        for other in pile.logs.values():
            if other.id != log.id and _blocking(top, f, other, gripper.finger_thickness_m / 2, up,
                                                log_top):
                return other.id
    return None


def _misfit(log, q: np.ndarray, tcp: np.ndarray, a: np.ndarray, c: np.ndarray,
            opening_m: float, gripper: Gripper) -> GraspOutcome | None:
    """Return why the jaws cannot close around ``log`` at ``q`` (angle, width, centre, depth)."""
    half = opening_m / 2.0
    axis_p = log.axis - (log.axis @ a) * a
    axis_p = axis_p / max(np.linalg.norm(axis_p), 1e-12)
    angle = math.degrees(math.acos(min(1.0, abs(float(c @ axis_p)))))
    if angle < gripper.min_angle_deg:
        return GraspOutcome('not_across', log.id,
                            f'closing {angle:.0f} deg from the axis of log {log.id} '
                            f'(< {gripper.min_angle_deg:g})')
    width = 2 * log.radius / math.sin(math.radians(angle))  # the log's section along the jaws
    if opening_m <= width:
        return GraspOutcome('too_narrow', log.id,
                            f'opening {opening_m:.3f} m <= log {log.id} width {width:.3f} m')
    offset = abs(float((q - tcp) @ c))
    if offset + width / 2 > half:
        return GraspOutcome('off_centre', log.id,
                            f'a jaw lands on log {log.id} ({offset:.3f} m off its axis)')
    depth = float((q - tcp) @ a)  # > 0: the axis lies beyond the fingertips
    if depth > 0.3 * log.radius:
        return GraspOutcome('too_shallow', log.id,
                            f'fingertips {depth:.3f} m short of the axis of log {log.id}')
    return None


def judge_grasp(pile: Pile, tcp, approach, closing, opening_m: float,
                gripper: Gripper = Gripper(), *, ground_z: float = 0.0) -> GraspOutcome:
    """Decide whether a grasp holds, from the pile's truth (world frame, metres).

    Parameters
    ----------
    pile : Pile
    tcp : array_like, shape (3,)
        Where the TCP (midway between the fingertips) closes.
    approach : array_like, shape (3,)
        The direction the gripper moves in to reach ``tcp`` (into the pile).
    closing : array_like, shape (3,)
        The line joining the jaws (its component along ``approach`` is ignored).
    opening_m : float
        How wide the jaws open.
    """
    tcp = np.asarray(tcp, dtype=np.float64)
    a = np.asarray(approach, dtype=np.float64)
    a = a / np.linalg.norm(a)
    c = np.asarray(closing, dtype=np.float64)
    c = c - (c @ a) * a
    c = c / np.linalg.norm(c)
    half = opening_m / 2.0
    found = _straddled(pile, tcp, a, half)
    if found is None:
        return GraspOutcome('no_log', -1, 'no log between the open jaws')
    log, s = found
    q = log.ends[0] + s * (log.ends[1] - log.ends[0])  # the axis point between the jaws
    if opening_m > gripper.stroke_m:
        return GraspOutcome('beyond_stroke', log.id,
                            f'opening {opening_m:.3f} m > the stroke {gripper.stroke_m:.3f} m')
    resting = sorted(pile.resting_on(log.id))
    if resting:
        return GraspOutcome('not_free', log.id,
                            f'log {log.id} has log(s) {resting} resting on it')
    misfit = _misfit(log, q, tcp, a, c, opening_m, gripper)
    if misfit is not None:
        return misfit
    fingers = [tcp + side * (half + gripper.finger_thickness_m / 2) * c for side in (-1, 1)]
    if min(float(f[2]) for f in fingers) < ground_z - 0.005:
        return GraspOutcome('too_deep', log.id, 'a fingertip goes into the ground')
    along = abs(s - 0.5) * log.length
    if along > log.length / 2 - gripper.jaw_m / 4:
        return GraspOutcome('past_end', log.id,
                            f'the jaws close past the end of log {log.id}')
    blocker = _finger_blocker(pile, log, q, fingers, a, gripper)
    if blocker is not None:
        return GraspOutcome('jaw_collision', log.id,
                            f'a finger lands on log {blocker}, above log {log.id}')
    return GraspOutcome('held', log.id, f'log {log.id} held')
