"""``python -m bot`` is the ``corpus-bot`` command."""

from bot.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
