"""One module per user capability. Importing this package registers every handler with ``bot.chat.router.on``."""

from handlers import autodebit, balance, bills, binding, help, notices, subscription, topup  # noqa: F401
