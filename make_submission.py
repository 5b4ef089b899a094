"""Blend finished experiments into an official-format submission: `python make_submission.py --blend best`."""
import sys

from competition.submission import make as main

if __name__ == "__main__":
    sys.exit(main())
