"""The Telegram side of corpus-bot, and its command line (``corpus-bot``, ``python -m bot``)."""
