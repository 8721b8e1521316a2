"""One module per user capability. Importing this package registers every handler with ``bot.router.on``."""

from handlers import help, subscription  # noqa: F401
