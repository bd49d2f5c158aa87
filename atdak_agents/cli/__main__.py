"""``python -m atdak_agents.cli``."""

import sys

from . import main

sys.exit(main())
