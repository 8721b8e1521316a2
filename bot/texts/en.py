"""English texts for international students. Keys must match bot/texts/zh.py."""

TEXTS: dict[str, str] = {
    # --- general ---
    "welcome": (
        "Welcome to the {school} campus card service!\n"
        "Here you can check your balance and bills, top up with WeChat Pay and set up automatic top-up.\n"
        "First step: reply \"bind\" (or menu 我的 → Bind) with your student number, name and card password.\n"
        "回复「中文」切换为中文。"
    ),
    "welcome_back": "Welcome back, {name}! Your card is still bound to this account. Reply \"balance\" or \"help\".",
    "help": (
        "What I can do:\n"
        "· balance — balance and recent spending\n"
        "· bills — this month's bill\n"
        "· top up — WeChat Pay (max {single} yuan each, {daily} a day)\n"
        "· auto debit — below {threshold} yuan, {amount} yuan from your bank card\n"
        "· bind / unbind — manage your card\n"
        "· faq — top-up not arriving, bank refused\n"
        "· rules — limits, refunds, graduates\n"
        "· 中文 — 切换为中文\n"
        "Reply \"cancel\" at any time to stop."
    ),
    "rules": (
        "Six rules of the campus card:\n"
        "1. At most {single} yuan per top-up and {daily} yuan a day.\n"
        "2. Mistaken top-ups are refunded only in person at {center} with your student card, never to the payment.\n"
        "3. New phone? Just verify again; no need to bind again.\n"
        "4. International students: register your passport number at the card service center before binding.\n"
        "5. Graduates' accounts freeze {months} months after leaving: withdraw your balance before then.\n"
        "6. Never tell anyone your payment password; beware of \"discounted top-up\" (代充优惠) scams."
    ),
    "faq": (
        "FAQ:\n"
        "[Bound but cannot top up] 1) network delay: wait 5 minutes and refresh; 2) data not synced: log out and in "
        "again; 3) maintenance: see the school's notice of service hours.\n"
        "[Bank refused the transaction] Check that online payment is enabled on the card and the amount is within "
        "the bank's single-payment limit, and ask your bank.\n"
        "Keep a screenshot of any error and contact the IT office; phone {phone}. Change your payment password regularly."
    ),
    "fallback": "Sorry, I did not understand that. Reply \"help\" to see what I can do.",
    "unsupported_type": "I can only read text and menu clicks for now. Reply \"help\" to see what I can do.",
    "language_set": "Switched to English. Reply \"help\" to see what I can do.",
    "error_apology": "Sorry, something went wrong on our side. Please try again later, or call {phone}.",
    "processing": "Looking it up, one moment; the result will follow shortly…",
    "cancelled": "Cancelled. Reply \"help\" to see what I can do.",
    "nothing_to_cancel": "Nothing to cancel. Reply \"help\" to see what I can do.",
    "dialog_expired": "Your previous step timed out ({minutes} minutes without reply) and was cancelled. Please start again, e.g. reply \"bind\".",
    "service_unavailable": "The service is busy right now; please try again shortly. Nothing you sent was lost.",
    "not_bound": "You have not bound a campus card yet. Reply \"bind\" to start: you need your student number, name and card password.",
    # --- binding, balance, bills (handlers/binding.py, balance.py, bills.py) ---
    # --- top-up (handlers/topup.py, bot/pages/topup.py) ---
    # --- auto-debit and notices (handlers/autodebit.py, handlers/notices.py) ---
}
