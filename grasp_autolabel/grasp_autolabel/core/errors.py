"""Every error a user can act on, in one hierarchy.

Each is a :class:`GraspAutolabelError` (a ``ValueError``: bad input, not a bug); its message is
one line naming the input and the problem, which the CLI and the nodes print without a traceback.
"""

__all__ = ['GraspAutolabelError', 'CommandError', 'SessionError', 'DatasetError', 'OutputError',
           'BagError', 'MountingError', 'ParameterError', 'ModelError', 'CheckpointError',
           'ModelPathError', 'UnknownFamilyError']


class GraspAutolabelError(ValueError):
    """The base of the project's errors: bad input a user can fix, named in the message."""


class CommandError(GraspAutolabelError):
    """A command cannot do what was asked; the message says why and what to do."""


class SessionError(GraspAutolabelError):
    """A session (or dataset) on disk is missing something or holds a bad file."""


class DatasetError(SessionError):
    """A dataset folder is missing, malformed, or would be mixed with another one."""


class OutputError(GraspAutolabelError):
    """An output the command may not write to (an input, another tool's folder, locked)."""


class BagError(GraspAutolabelError):
    """A bag cannot be read at all (named, with why)."""


class MountingError(GraspAutolabelError):
    """The mounting is not a rigid transform; the message names the value and the problem."""


class ParameterError(GraspAutolabelError):
    """A node parameter has a bad value; the message names it and says what is allowed."""


class ModelError(GraspAutolabelError):
    """A model file or model setting that cannot be used."""


class CheckpointError(ModelError):
    """A checkpoint or model file is missing, corrupt, or does not fit."""


class ModelPathError(ModelError):
    """A model path the node must not load; the message says which and why."""


class UnknownFamilyError(ModelError):
    """A model file or config names a family this version does not have."""
