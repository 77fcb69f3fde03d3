import sys

from dsgkd.cli.main import main

sys.exit(main())
