"""``python -m llm_bridge ...`` (and ``accelerate launch -m llm_bridge ...``) = ``elasticity ...``."""

import sys

from llm_bridge.cli import main

sys.exit(main())
