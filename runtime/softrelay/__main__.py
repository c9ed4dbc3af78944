"""``python -m softrelay``: the command line (``softrelay.cli.main``)."""

from softrelay.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
