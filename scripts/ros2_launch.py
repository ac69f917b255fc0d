"""`ros2 launch PACKAGE FILE [--show-args] [name:=value ...]` for machines without ros2cli.

What ros2launch's command does, with the real `launch` / `launch_ros` libraries: find the file
in the package's share folder, include it with the command line's arguments and run the
LaunchService until its processes end, or until SIGINT / SIGTERM shut them down; with
``--show-args`` print the declared arguments in ros2launch's format. Run it through
``scripts/ros2-launch.sh``, which puts the libraries on the path.
"""
import signal
import sys
from pathlib import Path

import launch
from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch.launch_description_sources import AnyLaunchDescriptionSource, get_launch_description_from_any_launch_file


def show_args(path: str) -> None:
    description = get_launch_description_from_any_launch_file(path)
    arguments = description.get_launch_arguments()
    if not arguments:
        print("No arguments.")
        return
    print("Arguments (pass arguments as '<name>:=<value>'):")
    for arg in arguments:
        default = " + ".join(s.describe() for s in arg.default_value) if arg.default_value is not None else None
        print(f"\n    '{arg.name}':\n        {arg.description}")
        print(f"        (default: {default})" if default is not None else "        (no default)")


def main(argv: list[str]) -> int:
    # a shell's background job starts with SIGINT ignored; ros2 launch is a foreground command
    signal.signal(signal.SIGINT, signal.default_int_handler)
    show = "--show-args" in argv or "-s" in argv
    argv = [a for a in argv if a not in ("--show-args", "-s")]
    if argv and argv[0].endswith(".py") and Path(argv[0]).is_file():  # ros2 launch PATH [args]
        argv = ["", *argv]
    if len(argv) < 2:
        print("usage: ros2-launch.sh PACKAGE FILE | PATH [--show-args] [name:=value ...]", file=sys.stderr)
        return 2
    package, name, *rest = argv
    bad = [a for a in rest if ":=" not in a]
    if bad:
        print(f"launch arguments must be name:=value, got {' '.join(bad)}", file=sys.stderr)
        return 2
    if not package:
        return run(name, rest, show)
    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError:
        print(f"Package '{package}' not found", file=sys.stderr)
        return 1
    matches = sorted(share.rglob(name))
    if not matches:
        print(f"file '{name}' was not found in the share directory of package '{package}' which is at '{share}'",
              file=sys.stderr)
        return 1
    return run(str(matches[0]), rest, show)


def run(path: str, rest: list[str], show: bool) -> int:
    if show:
        show_args(path)
        return 0
    service = launch.LaunchService(argv=rest, noninteractive=True)
    service.include_launch_description(launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(AnyLaunchDescriptionSource(path),
                                                launch_arguments=[tuple(a.split(":=", 1)) for a in rest])]))
    return service.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
