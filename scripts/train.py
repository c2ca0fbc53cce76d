"""Train one experiment: ``python scripts/train.py CONFIG [--set KEY=VALUE ...] [--out DIR]``."""
import sys

from tfasc.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
