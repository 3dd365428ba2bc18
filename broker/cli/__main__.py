"""``python -m klamm.broker.cli`` runs the ``klamm`` command when the script is not on PATH."""

from .main import main

main()
