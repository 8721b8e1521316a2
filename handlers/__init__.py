"""One module per user capability, each declaring what it answers on its own ``routes``.

``bot.chat.routes.build_router`` is the one place that imports them and composes their routes.
"""
