"""`python -m dpde_cli` runs the dpde command line (torchrun uses this too)."""

from dpde_cli.cli.app import main

if __name__ == "__main__":
    main()
