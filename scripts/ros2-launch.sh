#!/usr/bin/env bash
# `ros2 launch` for machines without ros2cli (these have no wheel of it): the real ROS 2
# `launch` / `launch_ros` libraries, from the upstream sources in ../shared/vendor/ros2_launch
# (test tooling, not part of the project). Use exactly as `ros2 launch`:
#
#   scripts/ros2-launch.sh grasp_autolabel sim.launch.py auto_capture:=true
#   scripts/ros2-launch.sh grasp_autolabel cell.launch.py --show-args
#
# The first run builds what the libraries need into build/ros2_launch (about 15 s); later runs
# start at once. With a real ROS 2 install, use its `ros2 launch` instead.
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR="${ROS2_LAUNCH_VENDOR:-$ROOT/../shared/vendor/ros2_launch}"
OUT="$ROOT/build/ros2_launch"
if [[ ! -d "$VENDOR/launch/launch" || ! -d "$VENDOR/launch_ros/launch_ros" ]]; then
  echo "ros2-launch: the launch libraries' sources are not at $VENDOR (set ROS2_LAUNCH_VENDOR)" >&2
  exit 3
fi
if [[ ! -f "$ROOT/.venv/bin/activate" || ! -f "$ROOT/install/setup.bash" ]]; then
  echo "ros2-launch: the environment is not built; run 'make setup' first" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
# shellcheck disable=SC1091
source "$ROOT/install/setup.bash"
if [[ ! -f "$OUT/ready" ]]; then
  mkdir -p "$ROOT/build"
  (
    flock 9  # parallel first runs build once
    if [[ ! -f "$OUT/ready" ]]; then
      echo "ros2-launch: building the launch libraries' dependencies into $OUT (once, ~15 s)" >&2
      mkdir -p "$OUT"
      python -m pip install --disable-pip-version-check -q --no-deps --target "$OUT/site" \
        osrf-pycommon==2.0.2 lark==1.1.9 2> >(grep -v 'is ignored: it is neither' >&2)
      export AMENT_PREFIX_PATH="$VIRTUAL_ENV:${AMENT_PREFIX_PATH:-}" CMAKE_PREFIX_PATH="$VIRTUAL_ENV:${CMAKE_PREFIX_PATH:-}"
      colcon --log-base "$OUT/log" build --base-paths "$VENDOR/composition_interfaces" \
        --build-base "$OUT/build" --install-base "$OUT/install" --merge-install \
        --event-handlers console_cohesion- \
        --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF \
        > "$OUT/colcon.txt" 2>&1 || { cat "$OUT/colcon.txt" >&2; echo "ros2-launch: colcon build failed" >&2; exit 1; }
      touch "$OUT/ready"
    fi
  ) 9>"$ROOT/build/.ros2_launch.lock"
fi
# shellcheck disable=SC1091
source "$OUT/install/setup.bash"
export PYTHONPATH="$VENDOR/launch:$VENDOR/launch_ros:$OUT/site:${PYTHONPATH:-}"
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
exec python "$ROOT/scripts/ros2_launch.py" "$@"
