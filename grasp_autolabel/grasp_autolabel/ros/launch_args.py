"""Typed launch arguments for the suite's launch files (imports ``launch``: launch files only).

A launch argument is a string; ``launch_ros`` turns it into a parameter by YAML rules, so
``fps:=15`` would reach the node as an integer and ``1e-3`` as a string. :func:`param` coerces
it to the parameter's own type first (``fps:=15`` -> 15.0, ``auto_capture:=1`` -> true), and
a value that is not of that type stops the launch with one line naming the argument.
"""
from __future__ import annotations

import os

from launch.actions import DeclareLaunchArgument
from launch.substitution import Substitution
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch.substitutions.substitution_failure import SubstitutionFailure
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

# Where a cell keeps its data unless told otherwise: one documented, absolute place (README,
# "Where data goes"), not the folder `ros2 launch` happened to be started in.
DEFAULT_SESSION_DIR = '~/grasp_autolabel/session'
DEFAULT_DATASET_DIR = '~/grasp_autolabel/dataset'


def argument(name: str, default, description: str) -> DeclareLaunchArgument:
    """Declare ``name`` with its default (bools as ``true`` / ``false``) and description.

    A substitution (a package file, :func:`config`) is a default found when the launch runs.
    """
    if isinstance(default, Substitution):
        return DeclareLaunchArgument(name, default_value=[default], description=description)
    text = str(default).lower() if isinstance(default, bool) else str(default)
    return DeclareLaunchArgument(name, default_value=text, description=description)


class _Typed(Substitution):
    """The launch argument ``name`` spelt as ``value_type`` would print it.

    ``15`` -> ``15.0`` for a float, ``3.0`` -> ``3`` for an int, ``1`` / ``True`` -> ``true`` for a
    bool; anything else stops the launch with one line naming the argument.
    """

    def __init__(self, name: str, value_type: type):
        super().__init__()
        self.name, self.value_type = name, value_type

    def describe(self) -> str:
        return f"LaunchConfig('{self.name}') as {self.value_type.__name__}"

    def perform(self, context) -> str:
        text = LaunchConfiguration(self.name).perform(context).strip()
        try:
            if self.value_type is bool:
                value = {'true': True, '1': True, 'false': False, '0': False}[text.lower()]
                return str(value).lower()
            number = float(text)
            if self.value_type is int:
                if not number.is_integer():
                    raise ValueError
                return str(int(number))
            return repr(number)
        except (KeyError, ValueError):
            kind = {bool: 'true or false', int: 'an integer', float: 'a number'}[self.value_type]
            raise SubstitutionFailure(
                f"launch argument '{self.name}:={text}': expected {kind}") from None


def param(name: str, value_type: type) -> ParameterValue:
    """Return the launch argument ``name`` as a parameter of ``value_type`` (int, float, bool)."""
    return ParameterValue(_Typed(name, value_type), value_type=value_type)


def config(filename: str) -> PathJoinSubstitution:
    """Return a parameter file of this package (found when the launch runs, not when read)."""
    return PathJoinSubstitution([FindPackageShare('grasp_autolabel'), 'config', filename])


class UserPath(Substitution):
    """The launch argument ``name`` as a path, ``~`` expanded (a shell leaves ``x:=~/f`` as is)."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def describe(self) -> str:
        return f"LaunchConfig('{self.name}') as a path"

    def perform(self, context) -> str:
        return os.path.expanduser(LaunchConfiguration(self.name).perform(context).strip())
