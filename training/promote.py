"""`python -m training.promote NAME VERSION`: the same command as `python -m app.promote`
(`tabserve promote`), which needs no TensorFlow and so runs in the serving image too."""

import sys

from app.promote import main

if __name__ == "__main__":
    sys.exit(main())
