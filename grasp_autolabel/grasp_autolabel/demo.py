"""`make demo`: the main job on the simulated cell (filled in as the pipeline lands)."""
import sys


def main() -> int:
    print("grasp_autolabel demo: the simulated cell and the labelling pipeline are not built yet.\n"
          "What works now: `grasp-autolabel info` and the message/geometry/conversion layers "
          "(`make test`).")
    from grasp_autolabel.info import collect

    for key, value in collect().items():
        print(f"  {key:22s} {'not available' if value is None else value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
