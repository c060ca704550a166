"""``python -m bayesmir``: the command line of :mod:`bayesmir.cli`."""

from bayesmir.cli import app

app(prog_name="bayesmir")
