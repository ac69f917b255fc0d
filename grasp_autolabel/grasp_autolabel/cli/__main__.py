"""``python -m grasp_autolabel.cli``: the ``grasp-autolabel`` command."""
import sys

from grasp_autolabel.cli.main import main

sys.exit(main())
