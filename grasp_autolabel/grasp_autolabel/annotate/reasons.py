"""Why the quality gate rejects a step: one :class:`Reason` per check, with its description.

The members are strings (``Reason.CAMERA_MOVED == 'camera_moved'``), so a labels file, a log
line and a ``/diagnostics`` key hold the plain name; a name that is not a member is refused where
it is read (``Reason('camara_moved')`` raises ``ValueError``).
"""
from __future__ import annotations

from enum import StrEnum

__all__ = ['Reason']


class Reason(StrEnum):
    """A rejection reason of the gate, in the order the gate checks them."""

    description: str

    def __new__(cls, value: str, description: str):
        member = str.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    NO_VALID_DEPTH = 'no_valid_depth', 'too few pixels have a valid depth in both frames'
    CAMERA_MOVED = ('camera_moved',
                    'the still part of the view shifted or tilted: the camera moved')
    LARGE_CHANGE = ('large_change', 'much of the view changed at once while the rest stayed '
                    'still (several objects, or a large part of the pile, went)')
    NEW_OBJECT_IN_VIEW = ('new_object_in_view',
                          'something is in view that was not there before (depth decreased)')
    NOTHING_REMOVED = 'nothing_removed', 'no region large enough for a log changed'
    MULTIPLE_OBJECTS_REMOVED = 'multiple_objects_removed', 'more than one object was removed'
    MASK_TOUCHES_BORDER = ('mask_touches_border',
                           "the removed object's mask touches the image border")
    MASK_TOO_SMALL = 'mask_too_small', 'the mask is too small for a log at that depth'
    MASK_TOO_LARGE = 'mask_too_large', 'the mask is too large for a log at that depth'
    SKELETON_NOT_LINE_LIKE = ('skeleton_not_line_like',
                              "the mask's skeleton is not one straight line")
    LOG_PARTLY_HIDDEN = ('log_partly_hidden', 'the log was mostly hidden behind a nearer one '
                         '(what is visible is much narrower than the hole it left is deep): '
                         'grasps on it would miss its axis')
    NO_GRASP_FOUND = 'no_grasp_found', 'no grasp could be placed on the mask'
