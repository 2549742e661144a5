"""``python -m datasets.synthetic``: see ``datasets.synthetic.cli``."""
import sys

from datasets.synthetic.cli import cli

sys.exit(cli())
