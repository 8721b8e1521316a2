"""H5 pages opened from the chat (bills, top-up, auto-debit). Identity always comes from OAuth (bot.h5auth)."""
