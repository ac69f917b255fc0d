#!/usr/bin/env bash
# One-command, idempotent setup of the development environment (called by `make setup`).
#
#   .venv/     Python venv: ROS 2 (Kilted) from the ros-* wheels on PyPI, colcon, torch pair,
#              and the grasp_autolabel package installed editable with all extras.
#   build/ install/ log/   colcon workspace: grasp_autolabel_msgs and grasp_autolabel.
#
# Each step is skipped when its inputs have not changed since it last succeeded (stamps in
# .venv/.stamps), so a second run takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
VENV="$ROOT/.venv"
STAMPS="$VENV/.stamps"

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# The machine's pip configuration names local index folders that may not exist; pip warns
# about each of them on every package. Those warnings are noise here, everything else is shown.
pip_install() {
  "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" \
    2> >(grep -v -e 'is ignored: it is neither a file nor a directory' >&2)
}

# stamp_ok NAME FILES...: true when the stamp NAME holds the current hash of FILES.
stamp_hash() { cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1; }
stamp_ok() { local name=$1; shift; [[ -f "$STAMPS/$name" && "$(cat "$STAMPS/$name")" == "$(stamp_hash "$@")" ]]; }
stamp_set() { local name=$1; shift; mkdir -p "$STAMPS"; stamp_hash "$@" > "$STAMPS/$name"; }

if ! command -v "$PYTHON" >/dev/null; then
  echo "setup: $PYTHON not found; the ROS 2 wheels need CPython 3.11 (set PYTHON=...)" >&2
  exit 1
fi

t0=$SECONDS
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

if ! stamp_ok base requirements/base.txt; then
  say "pip, setuptools"
  pip_install -r requirements/base.txt
  stamp_set base requirements/base.txt
fi

if ! stamp_ok ros requirements/ros.txt requirements/constraints.txt; then
  say "ROS 2 wheels and colcon (about 30 s)"
  pip_install -r requirements/ros.txt -c requirements/constraints.txt
  stamp_set ros requirements/ros.txt requirements/constraints.txt
fi

if ! stamp_ok torch requirements/torch.txt requirements/constraints.txt; then
  say "torch + torchvision (CUDA wheel pair, runs on CPU; about 2 min, 4.8 GB)"
  pip_install -r requirements/torch.txt -c requirements/constraints.txt
  stamp_set torch requirements/torch.txt requirements/constraints.txt
fi

# The wheels' CMake exports carry the paths of the machine they were built on; point them at
# this interpreter's headers and numpy, or CMake stops with "includes non-existent path".
if [[ ! -f "$STAMPS/cmake-patched" ]]; then
  say "patching the ROS wheels' CMake exports for this interpreter"
  "$VENV/bin/python" - <<'PY'
import pathlib, sys, sysconfig
import numpy
prefix = pathlib.Path(sys.prefix) / "share"
subs = {
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include": numpy.get_include(),
    "/opt/python/cp311-cp311/include/python3.11": sysconfig.get_paths()["include"],
}
n = 0
for path in prefix.rglob("*.cmake"):
    text = path.read_text(errors="surrogateescape")
    new = text
    for old, rep in subs.items():
        new = new.replace(old, rep)
    if new != text:
        path.write_text(new, errors="surrogateescape")
        n += 1
print(f"[setup] patched {n} CMake files")
PY
  touch "$STAMPS/cmake-patched"
fi

# The project itself, editable, with every extra (torch is already there, pinned above).
if ! stamp_ok project grasp_autolabel/setup.py requirements/constraints.txt; then
  say "grasp_autolabel (editable, all extras)"
  pip_install -c requirements/constraints.txt -e "./grasp_autolabel[all]"
  stamp_set project grasp_autolabel/setup.py requirements/constraints.txt
fi

# Chromium for the review page's browser tests (Debian's package, driven by Playwright; its
# own browser download cannot run here). Tried once: where apt-get cannot (no root, no network)
# the browser tests skip with the reason.
if ! command -v chromium >/dev/null && [[ ! -f "$STAMPS/chromium-tried" ]]; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    say "chromium for the review page's browser tests (about a minute)"
    mkdir -p log
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
      > log/apt-chromium.txt 2>&1 || say "chromium not installed (log/apt-chromium.txt): the browser tests will skip"
  fi
  touch "$STAMPS/chromium-tried"
fi

# colcon workspace. colcon itself skips nothing, so a stamp over the package sources keeps a
# second run fast.
COLCON_INPUTS=(grasp_autolabel_msgs/package.xml grasp_autolabel_msgs/CMakeLists.txt
               grasp_autolabel_msgs/msg/*.msg grasp_autolabel_msgs/srv/*.srv grasp_autolabel_msgs/action/*.action grasp_autolabel/package.xml grasp_autolabel/setup.py
               grasp_autolabel/setup.cfg)
shopt -s nullglob
COLCON_INPUTS+=(grasp_autolabel/launch/* grasp_autolabel/config/*)
shopt -u nullglob
if ! stamp_ok colcon "${COLCON_INPUTS[@]}" || [[ ! -f install/setup.bash ]]; then
  say "colcon build (grasp_autolabel_msgs, grasp_autolabel)"
  mkdir -p log
  (
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    colcon --log-base log build --symlink-install --event-handlers console_cohesion- \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
  ) > log/colcon-build.txt 2>&1 || { mkdir -p log; cat log/colcon-build.txt >&2; echo "setup: colcon build failed (log/colcon-build.txt)" >&2; exit 1; }
  stamp_set colcon "${COLCON_INPUTS[@]}"
fi

# tf2_msgs (the messages of /tf_static) has no wheel. Where the test tooling's copy of its
# upstream sources is present (../shared/vendor/tf2_msgs), build it into build/tf2_msgs so the
# tests see inference_node publish the camera's mounting; a real ROS 2 install has it already.
TF2_VENDOR="${TF2_MSGS_VENDOR:-$ROOT/../shared/vendor/tf2_msgs/tf2_msgs}"
TF2_OUT="$ROOT/build/tf2_msgs"
if [[ -f "$TF2_VENDOR/package.xml" && ! -f "$TF2_OUT/install/setup.bash" ]]; then
  say "tf2_msgs from the test tooling's sources (about 15 s)"
  mkdir -p "$TF2_OUT"
  (
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
    export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    colcon --log-base "$TF2_OUT/log" build --base-paths "$TF2_VENDOR" \
      --build-base "$TF2_OUT/build" --install-base "$TF2_OUT/install" --merge-install \
      --event-handlers console_cohesion- \
      --cmake-args -DPython3_EXECUTABLE="$VENV/bin/python" -DBUILD_TESTING=OFF
  ) > "$TF2_OUT/colcon.txt" 2>&1 || { cat "$TF2_OUT/colcon.txt" >&2; rm -rf "$TF2_OUT/install"; echo "setup: tf2_msgs build failed ($TF2_OUT/colcon.txt); /tf_static tests will skip" >&2; }
fi

say "done in $((SECONDS - t0)) s. Shell: source .venv/bin/activate && source install/setup.bash"
