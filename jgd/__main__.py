import sys

from jgd.cli import main

sys.exit(main())
