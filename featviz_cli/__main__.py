"""``python -m featviz_cli`` runs the CLI."""
from .cli import main

main()
