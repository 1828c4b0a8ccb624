import sys

from snapdex.cli import main

sys.exit(main())
