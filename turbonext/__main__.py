import sys

from turbonext.commands.main import main


sys.exit(main())
