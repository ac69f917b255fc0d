#!/usr/bin/env bash
# Run a command in the project's environment: the venv plus the colcon workspace overlay
# (what `source .venv/bin/activate && source install/setup.bash` gives an interactive shell).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -f "$ROOT/.venv/bin/activate" || ! -f "$ROOT/install/setup.bash" ]]; then
  echo "in-env: the environment is not built; run 'make setup' first" >&2
  exit 1
fi
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
# shellcheck disable=SC1091
source "$ROOT/install/setup.bash"
# tf2_msgs built by make setup from the test tooling's sources, where they were present
if [[ -f "$ROOT/build/tf2_msgs/install/setup.bash" ]]; then
  # shellcheck disable=SC1091
  source "$ROOT/build/tf2_msgs/install/setup.bash"
fi
# Camera images are ~1 MB: Fast DDS's default transports drop most of them at 30 Hz on
# localhost (measured: 8 of 30 colour frames/s arrive); LARGE_DATA (shared memory + TCP) delivers
# all 30. See the README, "DDS and large images".
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
exec "$@"
