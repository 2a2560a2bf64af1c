import sys

from imac.cli import main

sys.exit(main())
