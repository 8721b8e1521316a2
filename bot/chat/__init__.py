"""The WeChat conversation: webhook, XML, dedup, router, context, dialogs and replies."""
