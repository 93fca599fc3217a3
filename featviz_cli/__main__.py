"""``python -m featviz_cli`` runs the CLI."""
from .cli import main

if __name__ == "__main__":  # not when multiprocessing's spawn imports it in a sweep worker
    main()
