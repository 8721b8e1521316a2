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
    "topup_article_title": "Top up your campus card",
    "topup_article_desc": "{name}, your balance is {balance} yuan. Up to {single} yuan per top-up, {daily} a day. Tap to open the top-up page.",
    "topup_err_invalid_mode": "Unknown top-up type. Please refresh the page and choose an amount again.",
    "topup_err_invalid_amount": "That amount is not valid. Please choose or type an amount again.",
    "topup_err_not_quick_amount": "Quick top-up is {amounts} yuan only; use a custom amount for anything else.",
    "topup_err_over_single_limit": "One top-up may be at most {limit} yuan. Please split it into several.",
    "topup_err_custom_range": "A custom amount must be between {min} and {max} yuan.",
    "topup_err_custom_step": "A custom amount must be a multiple of {step} yuan, e.g. {step} or {step}0.",
    "topup_err_daily_limit": "You are near today's limit ({limit} yuan a day): {remaining} yuan left today.",
    "topup_err_not_bound": "Your campus card is not bound yet. Reply \"bind\" in the chat first, then top up.",
    "topup_err_card_frozen": "Your card is frozen and cannot be topped up. Please visit the Card Service Center with your student ID.",
    "topup_err_card_lost": "Your card is reported lost and cannot be topped up. Get a replacement at the Card Service Center.",
    "topup_err_card_graduated": "Graduate accounts cannot be topped up. To withdraw the balance, visit the Card Service Center.",
    "topup_err_pay_unavailable": "WeChat Pay is busy; no order was made and nothing was charged. Please try again shortly.",
    "topup_err_not_found": "Order not found.",
    "topup_page_title": "Campus card top-up",
    "topup_card_line": "{name} · balance {balance} yuan",
    "topup_quick_title": "Quick top-up (credited at once)",
    "topup_quick_item": "{amount} yuan · pay {pay}",
    "topup_fee_rule": "Quick top-ups carry a {rate}% fee, rounded half up to the fen: for {example} yuan you pay {example_pay} and {example} is credited.",
    "topup_custom_title": "Custom amount (arrives in 1–3 minutes)",
    "topup_custom_hint": "{min}–{max} yuan in multiples of {step}, no fee.",
    "topup_custom_placeholder": "Amount in yuan",
    "topup_pay_button": "Pay with WeChat",
    "topup_remaining": "You can still top up {remaining} yuan today (daily limit {daily}, single limit {single}).",
    "topup_peak": "It is a peak time ({hours}): custom top-ups may arrive slowly. Consider topping up later.",
    "topup_scam": "Beware of scams: the school never asks for your payment password; \"discounted top-up\" (代充优惠) offers are scams.",
    "topup_refund_rule": "Mistaken top-ups are not refunded online or to the payment: bring your student card to {center}.",
    "topup_js_processing": "Processing your payment… (usually seconds, at most a few minutes; do not pay again)",
    "topup_js_success": "Done! {amount} yuan credited; balance {balance} yuan.",
    "topup_js_cancel": "Payment cancelled; nothing was charged.",
    "topup_js_fail": "Payment not completed: {reason}",
    "topup_js_closed": "The order was closed and nothing was charged. Start a new top-up if you like.",
    "topup_js_not_in_wechat": "Please open this page in WeChat to pay.",
    "topup_js_choose": "Please choose or enter an amount first.",
    "topup_blocked_title": "Top-up not available",
    # --- auto-debit and notices (handlers/autodebit.py, handlers/notices.py) ---
}
