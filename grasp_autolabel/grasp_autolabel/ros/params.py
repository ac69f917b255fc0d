"""Node parameters declared once, with descriptors, ranges and one clear error on bad values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grasp_autolabel.core.errors import ParameterError
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

__all__ = ['Param', 'declare_parameters', 'ParameterError']


@dataclass(frozen=True)
class Param:
    """One node parameter.

    The nodes read their parameters once, at start-up, so each is declared read-only: `ros2 param
    set` is refused with the reason instead of being accepted and silently ignored.
    """

    name: str
    default: Any
    description: str
    min: float | None = None  # noqa: A003
    max: float | None = None  # noqa: A003
    choices: tuple | None = None
    read_only: bool = True


def _descriptor(p: Param) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.min is not None and p.max is not None:
        if isinstance(p.default, bool):
            pass
        elif isinstance(p.default, int):
            d.integer_range = [IntegerRange(from_value=int(p.min), to_value=int(p.max), step=0)]
        elif isinstance(p.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(p.min),
                                                         to_value=float(p.max), step=0.0)]
    if p.choices:
        d.additional_constraints = 'one of: ' + ', '.join(map(str, p.choices))
    return d


def declare_parameters(node, params: list[Param]) -> dict[str, Any]:
    """Declare every parameter on ``node`` and return their values by name.

    Raises
    ------
    ParameterError
        Naming the parameter, its value and the allowed range or choices.
    """
    values = {}
    for p in params:
        descriptor = _descriptor(p)
        is_float = isinstance(p.default, float)
        is_floats = isinstance(p.default, list)
        if is_float or is_floats:
            # `fps:=15` (or `settle_s: 1`, `[0, 0, 1]` in a file) is an integer to ROS: accept it
            # as the float it means, then pin the parameter to double as if declared so
            descriptor.dynamic_typing, descriptor.read_only = True, False
        try:
            value = node.declare_parameter(p.name, p.default, descriptor).value
        except InvalidParameterValueException as exc:
            raise ParameterError(f"parameter '{p.name}': {exc}; allowed: {_allowed(p)}") from None
        except InvalidParameterTypeException as exc:
            raise ParameterError(
                f"parameter '{p.name}': expected {type(p.default).__name__} ({exc})") from None
        if is_float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParameterError(f"parameter '{p.name}' = {value!r}: expected a number")
            value = float(value)
        if is_floats:
            value = _floats(p, value)
        _check_range(p, value)
        if is_float or is_floats:
            final = _descriptor(p)
            kind = Parameter.Type.DOUBLE if is_float else Parameter.Type.DOUBLE_ARRAY
            final.type = kind.value
            as_declared = Parameter(p.name, kind, value).get_parameter_value()
            node.set_descriptor(p.name, final, alternative_value=as_declared)
        values[p.name] = value
    return values


def _floats(p: Param, value) -> list[float]:
    """Return a list parameter as floats (integers accepted), or stop naming the parameter."""
    if isinstance(value, (str, bytes, bool)) or not hasattr(value, '__iter__') or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise ParameterError(f"parameter '{p.name}' = {value!r}: expected a list of numbers")
    return [float(v) for v in value]


def _check_range(p: Param, value) -> None:
    """Stop with one line naming ``p`` when ``value`` is outside its range or choices."""
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if p.min is not None and number and value < p.min:
        raise ParameterError(f"parameter '{p.name}' = {value}: below the minimum {p.min}")
    if p.max is not None and number and value > p.max:
        raise ParameterError(f"parameter '{p.name}' = {value}: above the maximum {p.max}")
    if p.choices and value not in p.choices:
        raise ParameterError(
            f"parameter '{p.name}' = {value!r}: expected one of "
            f"{', '.join(map(str, p.choices))}")


def _allowed(p: Param) -> str:
    if p.choices:
        return ', '.join(map(str, p.choices))
    if p.min is not None or p.max is not None:
        return f'[{p.min}, {p.max}]'
    return type(p.default).__name__
