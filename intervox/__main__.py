"""`python -m intervox` (used by torchrun) runs the CLI."""

from intervox.cli import main

if __name__ == "__main__":
    main()
