import sys

from shard_tools.cli import main

sys.exit(main())
