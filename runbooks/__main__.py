import sys

from runbooks.cli import main

sys.exit(main())
