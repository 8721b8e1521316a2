"""English texts for international students. Keys must match bot/texts/zh.py."""

TEXTS: dict[str, str] = {
    # --- general ---
    "welcome": (
        "Welcome to the {school} campus card service!\n"
        "Here you can check your balance and bills, top up with WeChat Pay and set up automatic top-up.\n"
        'First step: reply "bind" (or menu 我的 → Bind) with your student number, name and card password.\n'
        "回复「中文」切换为中文。"
    ),
    "welcome_back": 'Welcome back, {name}! Your card is still bound to this account. Reply "balance" or "help".',
    "help": (
        "What I can do:\n"
        "· balance — balance and recent spending\n"
        "· bills — this month's bill\n"
        "· top up — WeChat Pay (max {single} yuan each, {daily} a day)\n"
        "· auto debit — below {threshold} yuan, {amount} yuan from your bank card\n"
        "· bind / unbind — manage your card; manage bindings — see and remove the WeChat accounts bound to it\n"
        "· faq — top-up not arriving, bank refused\n"
        "· rules — limits, refunds, graduates\n"
        "· 中文 — 切换为中文\n"
        'Reply "cancel" at any time to stop.'
    ),
    "rules": (
        "Six rules of the campus card:\n"
        "1. At most {single} yuan per top-up and {daily} yuan a day.\n"
        "2. Mistaken top-ups are refunded only in person at {center} with your student card, never to the payment.\n"
        "3. New phone? Just verify again; no need to bind again.\n"
        "4. International students: register your passport number at the card service center before binding.\n"
        "5. Graduates' accounts freeze {months} months after leaving: withdraw your balance before then.\n"
        '6. Never tell anyone your payment password; beware of "discounted top-up" (代充优惠) scams.'
    ),
    "faq": (
        "FAQ:\n"
        "[Bound but cannot top up] 1) network delay: wait 5 minutes and refresh; 2) data not synced: log out and in "
        "again; 3) maintenance: see the school's notice of service hours.\n"
        "[Bank refused the transaction] Check that online payment is enabled on the card and the amount is within "
        "the bank's single-payment limit, and ask your bank.\n"
        "Keep a screenshot of any error and contact the IT office; phone {phone}. Change your payment password regularly."
    ),
    "fallback": 'Sorry, I did not understand that. Reply "help" to see what I can do.',
    "unsupported_type": 'I can only read text and menu clicks for now. Reply "help" to see what I can do.',
    "language_set": 'Switched to English. Reply "help" to see what I can do.',
    "error_apology": "Sorry, something went wrong on our side. Please try again later, or call {phone}.",
    "processing": "Looking it up, one moment; the result will follow shortly…",
    "cancelled": 'Cancelled. Reply "help" to see what I can do.',
    "nothing_to_cancel": 'Nothing to cancel. Reply "help" to see what I can do.',
    "dialog_expired": 'Your previous step timed out ({minutes} minutes without reply) and was cancelled. Please start again, e.g. reply "bind".',
    "service_unavailable": "The service is busy right now; please try again shortly. Nothing you sent was lost.",
    "not_bound": 'You have not bound a campus card yet. Reply "bind" to start: you need your student number, name and card password.',
    # --- binding, balance, bills (handlers/binding.py, balance.py, bills.py) ---
    "bind_ask_student_no": 'Let\'s bind your campus card (3 steps; reply "cancel" any time to stop).\nStep 1: enter your student/staff number (8-12 digits, not your phone number). International students may enter the passport number registered at the card center.',
    "bind_bad_student_no_length": 'A student/staff number has 8-12 digits; you entered {count}. Please enter it again (or reply "cancel"):',
    "bind_bad_student_no": 'That doesn\'t look like a student number. Enter your 8-12 digit student/staff number, or your registered passport number (or reply "cancel"):',
    "bind_passport_unregistered": 'This passport number is not registered yet, so the card cannot be bound. Please register it with your passport at {center}, then reply "bind" again.',
    "bind_ask_name": "Step 2: enter the cardholder's real name as registered with the school (letters are case-sensitive):",
    "bind_bad_name": "The name must not be empty or longer than 64 characters. Please enter it again:",
    "bind_ask_password": "Step 3: enter the card password.\nThe initial password is the last 6 characters of the ID card number, with an X written as 0 (an ID number ending in 12345X gives 123450); international students: the last 6 characters of the passport number.\nThis message is not stored.",
    "bind_mismatch": "The details do not match, so the card was not bound. Please check the student number, name and card password; if they are right, have your card record checked at {center}.",
    "bind_retry": "{left} tries left. Please enter your student/staff number again:",
    "bind_locked": "Too many attempts: binding is paused to protect the account until {until} (Beijing time). Forgot the card password? Bring your ID to {center}.",
    "bind_card_locked": "This card's password was entered wrongly many times, so binding it is paused to protect the cardholder. Cardholders: have it unlocked at {center} (bring ID), or try again after {until} (Beijing time).",
    "bindings_ask_password": 'Manage bindings: card {name} (no. {no}).\nEnter the card password to see and remove the WeChat accounts bound to this card (reply "cancel" to stop). This message is not stored.',
    "bindings_wrong_password": 'Wrong card password; {left} tries left. Please enter the card password again (or reply "cancel"):',
    "bindings_list_head": "Card {name} (no. {no}) is bound to {count} WeChat account(s):",
    "bindings_item": "{n}. bound {time}",
    "bindings_item_you": "{n}. bound {time} (this WeChat)",
    "bindings_list_foot": 'Reply a number to remove that binding: it can no longer see or top up this card. Reply "cancel" to stop. If you don\'t recognise one, remove it and change the card password at {center}.',
    "bindings_bad_choice": 'Please reply a number from the list (1-{count}), or "cancel".',
    "bindings_removed": "Binding {n} (bound {time}) removed: that WeChat can no longer see or top up this card.",
    "bindings_removed_self": 'This WeChat\'s binding was removed. Reply "bind" whenever you want to bind again.',
    "bindings_gone": 'That binding no longer exists; nothing was changed. Reply "manage bindings" for the current list.',
    "notice_binding_added_event": "New WeChat bound it",
    "notice_binding_added_advice": "Not you? Bindings",
    "notice_binding_guessed_event": "Many wrong passwords",
    "notice_binding_guessed_advice": "Visit the card desk",
    "bind_already": 'This WeChat account is already bound to card {name} (student no. {no}). One WeChat account holds one card: to bind another, reply "unbind" first.',
    "bind_already_done": 'This WeChat account is already bound to a card. Reply "balance" to see the balance.',
    "bind_card_full": 'This card is already bound to {max} WeChat accounts, the maximum. Reply "unbind" in one of them first, or ask at {center}.',
    "bind_success": 'Card bound! Cardholder: {name}\nBalance: {balance} yuan\nReply "balance" for recent transactions, "top up" to add money.',
    "unbind_confirm": 'Unbind card {name} (student no. {no}) from this WeChat account?\nReply "yes" to unbind; anything else keeps it.',
    "unbind_kept": "Kept: nothing was changed.",
    "unbind_done": 'The card is unbound. Reply "bind" whenever you want to bind again.',
    "balance_header": "Campus card {name} (student no. {no})",
    "balance_amount": "Balance: {balance} yuan (as of {as_of})",
    "balance_amount_last": "Last known balance: {balance} yuan (as of {as_of})",
    "balance_amount_unknown": "Balance: cannot be shown right now (the card system has not told us this card's balance yet)",
    "balance_stale_maintenance": "The campus card system is under maintenance, so the latest balance cannot be read; expected back at {until}.",
    "balance_stale_no_answer": "The campus card system is not answering, so the latest balance cannot be read. Please try again later.",
    "balance_stale_unknown": "The campus card system cannot find this card right now. Please try again later or ask at {center}.",
    "balance_as_of": "as of {as_of}",
    "kind_subsidy": "Subsidy",
    "bills_unavailable_maintenance": "The campus card system is under maintenance, so bills cannot be shown now; expected back at {until}.",
    "bills_unavailable": "The campus card system is not answering, so bills cannot be shown now. Please try again later.",
    "bills_partial": "A busy month: only the latest {count} transactions are counted below.",
    "verify_unavailable": "Cannot verify right now, please try again later (the campus card system is not answering; this try does not count as a wrong password).",
    "bind_success_remote": 'Card bound! Cardholder: {name}\nReply "balance" to see the balance, "top up" to add money.',
    "balance_status": "Card status: {status}",
    "status_active": "active",
    "status_graduated": "graduated",
    "status_graduate_frozen": "frozen (graduated)",
    "status_frozen": "frozen",
    "status_lost": "reported lost",
    "card_frozen": "This card is frozen: no spending or top-ups. Please visit the Card Service Center with your student ID.",
    "card_lost": "This card is reported lost and cannot be used. Get a replacement at the Card Service Center; the balance moves to it.",
    "card_graduated": "This graduate account is frozen: no spending or top-ups. To withdraw the balance, visit the Card Service Center.",
    "balance_graduate_before": "You left on {left_on}; the account freezes on {freeze_on}, in {days} days. Please withdraw the balance at {center} before then.",
    "balance_graduate_after": "This graduate account was frozen on {freeze_on}: no spending or top-ups. To get the {balance} yuan back, bring your ID to {center}.",
    "balance_frozen_explained": "This card is frozen: no spending or top-ups for now; the balance is safe. To unfreeze it, go to {center}.",
    "balance_lost_explained": "This card is reported lost: the balance is safe and nobody else can use it. Get a replacement at {center}; the balance moves to the new card.",
    "balance_recent": "Recent transactions:",
    "balance_no_entries": "No transactions yet.",
    "balance_footer": 'Reply "bills" for this month\'s bill.',
    "kind_opening": "Opening balance",
    "kind_topup": "WeChat top-up",
    "kind_spend": "Purchase",
    "kind_autodebit": "Auto top-up",
    "kind_refund": "Refund",
    "kind_adjust": "Adjustment",
    "kind_withdraw": "Withdrawal",
    "bills_month": "{month_name} {year}",
    "bills_title": "Bill for {month} · {name}",
    "bills_totals": "In {income} yuan · out {spent} yuan ({count} transactions)",
    "bills_more": "…and {more} more on the bill page.",
    "bills_empty": "No transactions this month.",
    "bills_open_page": "Tap for details and earlier months.",
    "bills_page_title": "Campus card bill",
    "bills_page_balance": "Balance (yuan)",
    "bills_page_income": "In (yuan)",
    "bills_page_spent": "Out (yuan)",
    "bills_page_after": "balance {balance}",
    "bills_page_empty": "No transactions in this month.",
    "bills_page_foot": "Questions about your bill? Ask at {center}.",
    "bills_page_bad_month": "That month is not valid. Please reopen the bill from the menu.",
    # --- top-up (handlers/topup.py, bot/pages/topup.py) ---
    "topup_article_title": "Top up your campus card",
    "topup_article_desc": "{name}, your balance is {balance} yuan. You can still top up {remaining} yuan today (daily limit {daily}, single limit {single}). Tap to open the top-up page.",
    "topup_err_invalid_mode": "Unknown top-up type. Please refresh the page and choose an amount again.",
    "topup_err_invalid_amount": "That amount is not valid. Please choose or type an amount again.",
    "topup_err_not_quick_amount": "Quick top-up is {amounts} yuan only; use a custom amount for anything else.",
    "topup_err_over_single_limit": "One top-up may be at most {limit} yuan. Please split it into several.",
    "topup_err_custom_range": "A custom amount must be between {min} and {max} yuan.",
    "topup_err_custom_step": "A custom amount must be a multiple of {step} yuan, e.g. {step} or {step}0.",
    "topup_err_daily_limit": "You are near today's limit ({limit} yuan a day): {remaining} yuan left today.",
    "topup_err_not_bound": 'Your campus card is not bound yet. Reply "bind" in the chat first, then top up.',
    "topup_err_card_frozen": "Your card is frozen and cannot be topped up. Please visit the Card Service Center with your student ID.",
    "topup_err_card_lost": "Your card is reported lost and cannot be topped up. Get a replacement at the Card Service Center.",
    "topup_err_card_graduated": "Graduate accounts cannot be topped up. To withdraw the balance, visit the Card Service Center.",
    "topup_err_pay_unavailable": "WeChat Pay is busy; no order was made and nothing was charged. Please try again shortly.",
    "topup_err_not_found": "Order not found.",
    "topup_page_title": "Campus card top-up",
    "topup_card_line": "{name} · balance {balance} yuan",
    "topup_quick_title": "Quick top-up (credited at once)",
    "topup_quick_item": "you pay {pay}",
    "topup_fee_rule": "Quick top-ups carry a {rate}% fee, rounded half up to the fen: for {example} yuan you pay {example_pay} and {example} is credited.",
    "topup_custom_title": "Custom amount (arrives in 1–3 minutes)",
    "topup_custom_hint": "{min}–{max} yuan in multiples of {step}, no fee.",
    "topup_custom_placeholder": "Amount in yuan",
    "topup_pay_button": "Pay with WeChat",
    "topup_remaining": "You can still top up {remaining} yuan today (daily limit {daily}, single limit {single}).",
    "topup_peak": "It is a peak time ({hours}): custom top-ups may arrive slowly. Consider topping up later.",
    "topup_scam": 'Beware of scams: the school never asks for your payment password; "discounted top-up" (代充优惠) offers are scams.',
    "topup_refund_rule": "Mistaken top-ups are not refunded online or to the payment: bring your student card to {center}.",
    "topup_js_processing": "Processing your payment… (usually seconds, at most a few minutes; do not pay again)",
    "topup_js_success": "Done! {amount} yuan credited; balance {balance} yuan.",
    "topup_js_cancel": "Payment cancelled; nothing was charged.",
    "topup_js_fail": "Payment not completed: {reason}",
    "topup_js_closed": "The order was closed and nothing was charged. Start a new top-up if you like.",
    "topup_cancel_unconfirmed": "WeChat Pay has not confirmed the close yet, so this order still counts toward today's limit. If you did not pay, nothing is charged; it closes by itself when it expires.",
    "topup_js_not_in_wechat": "Please open this page in WeChat to pay.",
    "topup_js_choose": "Please choose or enter an amount first.",
    "topup_blocked_title": "Top-up not available",
    # --- auto-debit and notices (handlers/autodebit.py, handlers/notices.py) ---
    "autodebit_not_bound": 'Auto top-up needs a bound campus card. Reply "bind" to start.',
    "autodebit_card_blocked": "This card cannot use auto top-up now (frozen, lost or graduated). Please visit {center}.",
    "autodebit_article_title": "Auto top-up from your bank card",
    "autodebit_article_unsigned": (
        "When your balance falls below {threshold} yuan, {amount} yuan is moved from your bank card (bank hours {hours}). Tap to sign up."
    ),
    "autodebit_article_signed": (
        "Signed: bank card ending {last4}; below {threshold} yuan, {amount} yuan is added; ends {ends}. Tap to view, ask for a refund or cancel."
    ),
    "autodebit_err_not_bound": 'Please bind your campus card first (reply "bind" in the chat).',
    "autodebit_err_card_blocked": "This card cannot use auto top-up now (frozen, lost or graduated).",
    "autodebit_err_invalid_account": "Please enter a valid bank card number (12-20 digits).",
    "autodebit_err_already_signed": "You have already signed up for auto top-up.",
    "autodebit_err_bank_unavailable": "The bank cannot be reached right now. Please try again shortly.",
    "autodebit_err_no_account": "The bank does not know this card number. Please check it.",
    "autodebit_err_bank_refused_sign": "The bank refused: make sure online payment is enabled for this card, or call your bank.",
    "autodebit_err_no_agreement": "You have no active auto top-up agreement.",
    "autodebit_err_not_found": "Auto top-up not found.",
    "autodebit_err_too_late": "The refund deadline ({deadline}) has passed; refunds can no longer be requested online. Ask the Card Service Center.",
    "autodebit_err_already_requested": "A refund was already requested for this top-up.",
    "autodebit_err_already_decided": "This refund request was already handled ({state}).",
    "autodebit_err_refund_at_desk": "This card's balance is kept by the school's card system: auto top-up refunds are done at {center}.",
    "autodebit_err_balance_too_low": "The card balance is too low to take this top-up back.",
    "autodebit_err_bank_refused_refund": "The bank refused the refund ({reason}); the card keeps the money.",
    "entry_err_unknown_card": "no card with this student_no",
    "entry_err_card_blocked": "card is {state}",
    "entry_err_insufficient_balance": "balance too low for this spend",
    "entry_err_entry_id_reused": "entry_id already used for another card",
    "entry_err_balance_after_missing": "a remote card system's entry must carry balance_after_fen",
    "notice_yuan": "{amount} yuan",
    "notice_reason_insufficient_funds": "Bank balance too low",
    "notice_reason_refused": "Bank refused",
    "notice_reason_no_account": "Unknown bank card",
    "notice_advice_insufficient_funds": "Add funds to bank",
    "notice_advice_refused": "Enable online pay",
    "notice_advice_no_account": "Please sign again",
    "notice_agreement_ending": "Ending soon",
    "notice_agreement_ended": "Agreement ended",
    "notice_agreement_advice": "Please sign again",
    "credit_pending": "Paid {amount} yuan, not yet on the card: {why}. Do not pay again; we will tell you when it is credited.",
    "credit_why_delivering": "being credited now",
    "credit_why_maintenance": "the card system is closed for maintenance until about {until}",
    "credit_why_no_answer": "the card system is not answering; we try again at {at}",
    "credit_refused_line": "Paid {amount} yuan, but the card system refused it ({reason}). It is on record; please visit {center}.",
    "credit_wait_maintenance": "Card system closed till {until}",
    "credit_wait_no_answer": "Card system not answering",
    "credit_wait_advice": "Paid; will be credited",
    "credit_refused_card_lost": "Card reported lost",
    "credit_refused_card_frozen": "Card frozen",
    "credit_refused_graduated": "Card holder has left",
    "credit_refused_unknown_holder": "Card not found",
    "credit_refused_over_limit": "Over the card's limit",
    "credit_refused_refused": "Refused by card system",
    "credit_refused_advice": "Visit the service center",
    "notice_refund_approved": "Refunded to bank",
    "notice_credit_refunded_wechat": "Refunded to WeChat",
    "credit_ops_err_not_found": "No credit with ref {ref}.",
    "credit_ops_err_not_retryable": "Only a pending or refused credit can be retried (this one is {state}).",
    "credit_ops_err_delivered": "This credit is on the card: it is never refunded here. Mistaken top-ups are refunded in person at the service center.",
    "credit_ops_err_not_refused": "Only money the card system refused can be refunded (this credit is {state}): retry it or wait for the card system.",
    "credit_ops_err_refund_requested": "The student's refund request {request} already returned this auto top-up.",
    "notice_refund_rejected": "Refund declined",
    "autodebit_page_title": "Auto top-up",
    "autodebit_page_not_bound": 'Please bind your campus card first (reply "bind" in the chat), then sign up here.',
    "autodebit_page_blocked": "This card cannot use auto top-up now (frozen, lost or graduated). Please visit {center}.",
    "autodebit_rule": (
        "When your card balance falls below {threshold} yuan, {amount} yuan is moved from your bank card,"
        " only during bank hours {hours}; otherwise it waits for the next bank hours."
    ),
    "autodebit_sign_title": "Sign up for auto top-up",
    "autodebit_account_label": "Bank card number",
    "autodebit_account_placeholder": "Your own bank card number",
    "autodebit_sign_button": "Agree and sign",
    "autodebit_sign_note": (
        "Agreements end every year in month {month} and must be signed again. The bank card must allow"
        " online payment and hold enough money. Refunds can be requested until day {day} of the next month."
    ),
    "autodebit_signed_title": "Auto top-up is on",
    "autodebit_signed_card": "Bank card ending {last4}",
    "autodebit_signed_rule": "Below {threshold} yuan, {amount} yuan is added",
    "autodebit_ends": "Ends on {date} (sign again after that)",
    "autodebit_cancel_button": "Cancel agreement",
    "autodebit_cancel_confirm": "Cancel the auto top-up agreement?",
    "autodebit_history_title": "Auto top-ups this month and last",
    "autodebit_history_empty": "No auto top-ups yet.",
    "autodebit_history_item": "{time} added {amount} yuan",
    "autodebit_refund_button": "Request refund",
    "autodebit_refund_until": "Refund can be requested until {date}",
    "autodebit_refund_too_late": "Too late for a refund (deadline {date})",
    "autodebit_refund_pending": "Refund requested, waiting",
    "autodebit_refund_approving": "Refund in progress",
    "autodebit_refund_approved": "Refunded",
    "autodebit_refund_rejected": "Refund declined",
    "autodebit_refund_failed": "Refund failed; please ask the service center",
    "autodebit_refund_confirm": "Request a refund of this auto top-up?",
    "autodebit_last_failed": "The last auto top-up did not go through: {reason}.",
    "autodebit_bank_advice": (
        "If the bank refused: make sure the card allows online payment and the amount is within the bank's single-payment limit, and call your bank."
    ),
    "autodebit_waiting": "An auto top-up is waiting for bank hours; expected at {time}.",
    "autodebit_js_signed": "Signed up!",
    "autodebit_js_cancelled": "Auto top-up cancelled.",
    "autodebit_js_requested": "Refund requested; you will be told the result.",
    "autodebit_js_error": "That did not work; please try again shortly.",
    # --- understanding, scams, hand-off, announcements, English menu, student numbers (issue 15) ---
    "fallback_menu": (
        "Sorry, I did not understand that yet. I can help with:\n"
        "· balance · bills · top up · auto debit\n"
        "· bind / unbind / manage bindings\n"
        "· questions: top-up not arrived, bank refused, refunds, new phone, graduates, international students\n"
        'Or describe the problem, e.g. "top-up not arrived"; reply "human" for a person, "help" for everything I do.'
    ),
    "faq_choices": "Which one do you mean? Reply with it:\n{choices}",
    "faq_choice_item": "· {title}",
    "scam_warning": (
        '⚠️ Scam alert: the school never offers "top-ups on your behalf", discounted top-ups or paid order-brushing. Top up only in the '
        "school's app, Alipay's campus service or this account. Anyone asking for a verification code, payment password or card password "
        "is a scammer: tell no one. Already paid or told someone? Call {phone} and the police (110) at once."
    ),
    "support_phone": "To reach a person: call {phone} ({days}{hours}) or visit {center}.",
    "support_closed": "Our staff are not in now ({days}{hours}); someone will answer from {next}. Urgent? Call {phone}, or describe the problem and I will try to help.",
    "support_misunderstood": "Sorry, I still did not understand.",
    "support_weekdays": "Mon-Fri ",
    "support_every_day": "daily ",
    "announcement_line": "📢 {text}",
    "announcement_maintenance": "📢 The card system is under maintenance until about {until}; top-ups made meanwhile are credited automatically afterwards.",
    "bind_student_no_digits": 'A student number is 8–12 digits; yours has letters or other characters. Please enter the student number again (reply "cancel" to stop):',
    "bind_phone_not_student_no": 'That looks like a phone number; please enter your student number (8–12 digits; reply "cancel" to stop):',
}
