import sys

from turbonext.cli import main

sys.exit(main())
