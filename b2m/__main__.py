import sys

from b2m.cli import main

sys.exit(main())
