import sys

from seispinn.cli import main

sys.exit(main())
