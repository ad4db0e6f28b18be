"""``python -m elasticity ...`` (and ``accelerate launch -m elasticity ...``) = ``elasticity ...``."""

import sys

from elasticity.cli import main

sys.exit(main())
