import sys

from gptmagic.cli import main

sys.exit(main())
