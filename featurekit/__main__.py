import sys

from featurekit.cli import main

sys.exit(main())
