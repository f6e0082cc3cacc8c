import sys

from hadanas.cli import main

sys.exit(main())
