"""Helpers the benchmarks share (each bench script runs as `python bench/NAME.py`, so this
module is importable as `common`)."""
import os


def one_core() -> None:
    """Pin this process and OpenCV to one core (the "one core" figures)."""
    import cv2

    cv2.setNumThreads(1)
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass


def group_rss_mb(pgid: int) -> float:
    """Resident memory of every process in a process group, MB (a node and the child the ROS
    wheels' bootstrapper starts it in)."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return total / 1024
