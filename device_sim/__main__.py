"""`python -m device_sim`: see device_sim/cli.py."""

import sys

from device_sim.cli import main

sys.exit(main())
