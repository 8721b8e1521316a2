"""中文文案。Keys must match bot/texts/en.py (a test checks)."""

TEXTS: dict[str, str] = {
    # --- general ---
    "welcome": (
        "欢迎关注{school}校园卡服务！\n"
        "在这里可以：查余额、看账单、微信充值、设置自动充值（自动圈存）。\n"
        "第一步：回复「绑定」或点菜单「我的 → 绑定校园卡」，输入学号、姓名和卡密码即可。\n"
        "Reply \"English\" to switch language."
    ),
    "welcome_back": "欢迎回来，{name}！您的校园卡仍绑定在本账号。回复「余额」查询余额，「帮助」查看更多。",
    "help": (
        "校园卡服务可以帮您：\n"
        "· 余额 — 查询余额和最近消费\n"
        "· 账单 — 本月账单\n"
        "· 充值 — 微信充值（单笔≤{single}元，每日≤{daily}元）\n"
        "· 自动代扣 — 余额低于{threshold}元时自动从银行卡充值{amount}元\n"
        "· 绑定 / 解绑 — 管理校园卡\n"
        "· 常见问题 — 充值不到账、银行拒绝等\n"
        "· 规则 — 充值限额、退款、毕业生须知\n"
        "· English — switch to English\n"
        "办理中随时回复「取消」可退出。"
    ),
    "rules": (
        "校园卡六条规则：\n"
        "1. 单笔充值不超过{single}元，每日累计不超过{daily}元。\n"
        "2. 误充值只能持学生卡到{center}现场办理退款，不会原路退回。\n"
        "3. 更换手机后只需重新验证，无需重新绑定。\n"
        "4. 国际学生须先到校园卡服务中心登记护照号，才能绑定。\n"
        "5. 毕业生账户在离校{months}个月后冻结，请在此之前取出余额。\n"
        "6. 不要向任何人透露支付密码，谨防「代充优惠」诈骗。"
    ),
    "faq": (
        "常见问题：\n"
        "【已绑定但无法充值】1) 网络延迟：请等待5分钟后刷新；2) 数据未同步：退出后重新登录；"
        "3) 系统维护：请留意学校发布的服务时间通知。\n"
        "【银行拒绝交易】请确认银行卡已开通网上支付、金额未超过银行单笔限额，并咨询发卡银行。\n"
        "遇到报错请保留截图，联系学校信息中心；服务电话 {phone}。请定期修改支付密码。"
    ),
    "fallback": "抱歉，我还看不懂这条消息。回复「帮助」查看我能做什么。",
    "unsupported_type": "目前只能处理文字和菜单哦。回复「帮助」查看我能做什么。",
    "language_set": "已切换为中文。回复「帮助」查看可用功能。",
    "error_apology": "抱歉，系统开小差了，请稍后再试。如一直出现，请联系{phone}。",
    "processing": "正在查询，请稍候，结果将稍后发给您…",
    "cancelled": "已取消。回复「帮助」查看可用功能。",
    "nothing_to_cancel": "当前没有进行中的操作。回复「帮助」查看可用功能。",
    "dialog_expired": "上一步操作已超时（{minutes}分钟未回复），已自动取消。请重新开始，例如回复「绑定」。",
    "service_unavailable": "服务暂时繁忙，请稍后再试。您的信息不会丢失。",
    "not_bound": "您还没有绑定校园卡。回复「绑定」开始绑定，需要学号、姓名和校园卡密码。",
    # --- binding, balance, bills (handlers/binding.py, balance.py, bills.py) ---
    "bind_ask_student_no": "开始绑定校园卡（共3步，随时回复「取消」退出）。\n第1步：请输入学号/工号（8–12位数字，不是手机号）。国际学生也可输入已在校园卡中心登记的护照号。",
    "bind_bad_student_no_length": "学号/工号应为8–12位数字，您输入的是{count}位。请重新输入（回复「取消」退出）：",
    "bind_bad_student_no": "没看懂这个学号。请输入8–12位数字的学号/工号，国际学生可输入登记的护照号（回复「取消」退出）：",
    "bind_passport_unregistered": "这个护照号尚未登记，暂时无法绑定。请携带护照到{center}登记护照号后，再回复「绑定」。",
    "bind_ask_name": "第2步：请输入持卡人的真实姓名（与学校登记一致，英文字母区分大小写）：",
    "bind_bad_name": "姓名不能为空且不超过64个字符，请重新输入：",
    "bind_ask_password": "第3步：请输入校园卡密码。\n初始密码为身份证号后6位，X记作0（例如身份证号以 12345X 结尾，初始密码为 123450）；国际学生为护照号后6位。\n本条消息不会被保存。",
    "bind_mismatch": "信息不匹配，未能绑定。请核对学号、姓名和卡密码；如确认无误，请到{center}核对校园卡档案。",
    "bind_retry": "还可以再试{left}次。请重新输入学号/工号：",
    "bind_locked": "尝试次数过多，为保护您的账户，绑定已暂停，请于{until}（北京时间）后再试。忘记卡密码请携带有效证件到{center}办理。",
    "bind_already": "您的微信已绑定校园卡 {name}（学号 {no}）。一个微信只能绑定一张卡：如需绑定另一张，请先回复「解绑」。",
    "bind_already_done": "您的微信已绑定校园卡。回复「余额」查看余额。",
    "bind_card_full": "这张校园卡已绑定{max}个微信，达到上限。请先在其中一个微信中回复「解绑」，或到{center}咨询。",
    "bind_success": "绑定成功！持卡人：{name}\n当前余额：{balance} 元\n回复「余额」查看最近交易，「充值」为校园卡充值。",
    "unbind_confirm": "确定要解除校园卡 {name}（学号 {no}）与本微信的绑定吗？\n回复「确认」解绑；回复其他内容保留绑定。",
    "unbind_kept": "已保留绑定，没有做任何修改。",
    "unbind_done": "已解除绑定。以后需要时回复「绑定」即可重新绑定。",
    "balance_header": "校园卡 {name}（学号 {no}）",
    "balance_amount": "余额：{balance} 元",
    "balance_pending": "过渡余额：{pending} 元（已充值，下次刷卡时自动存入卡内）",
    "balance_status": "卡状态：{status}",
    "status_active": "正常",
    "status_graduated": "已毕业",
    "status_graduate_frozen": "已冻结（毕业离校）",
    "status_frozen": "已冻结",
    "status_lost": "已挂失",
    "balance_graduate_before": "您已于{left_on}离校，账户将于{freeze_on}冻结，还剩{days}天。请在此之前到{center}取出余额。",
    "balance_graduate_after": "毕业账户已于{freeze_on}冻结，不能消费和充值。余额 {balance} 元请携带有效证件到{center}办理退还。",
    "balance_frozen_explained": "此卡已冻结，暂不能消费和充值，余额安全保留。如需解冻，请到{center}办理。",
    "balance_lost_explained": "此卡已挂失，余额安全保留，他人无法使用。请到{center}补办新卡，余额将转入新卡。",
    "balance_recent": "最近交易：",
    "balance_no_entries": "暂无交易记录。",
    "balance_footer": "回复「账单」查看本月账单。",
    "kind_opening": "期初余额",
    "kind_topup": "微信充值",
    "kind_spend": "消费",
    "kind_autodebit": "自动充值",
    "kind_refund": "退款",
    "kind_adjust": "余额调整",
    "kind_withdraw": "取款",
    "bills_month": "{year}年{month}月",
    "bills_title": "{month}账单 · {name}",
    "bills_totals": "收入 {income} 元 · 支出 {spent} 元（共{count}笔）",
    "bills_more": "…还有{more}笔，请打开账单页面查看。",
    "bills_empty": "本月暂无交易。",
    "bills_open_page": "点击查看账单详情和往月账单。",
    "bills_page_title": "校园卡账单",
    "bills_page_balance": "当前余额（元）",
    "bills_page_pending": "过渡余额 {pending} 元，下次刷卡时存入卡内",
    "bills_page_income": "收入（元）",
    "bills_page_spent": "支出（元）",
    "bills_page_after": "余额 {balance}",
    "bills_page_empty": "本月没有交易记录。",
    "bills_page_foot": "如对账单有疑问，请到{center}咨询。",
    "bills_page_bad_month": "月份格式不正确，请从公众号菜单「账单」重新打开。",
    # --- top-up (handlers/topup.py, bot/pages/topup.py) ---
    "topup_article_title": "校园卡充值",
    "topup_article_desc": "{name}，当前余额 {balance} 元。单笔不超过{single}元，每日不超过{daily}元。点此打开充值页面。",
    "topup_err_invalid_mode": "充值方式不正确，请刷新页面后重新选择金额。",
    "topup_err_invalid_amount": "金额格式不正确，请重新选择或输入金额。",
    "topup_err_not_quick_amount": "快捷充值只能选择 {amounts} 元，其他金额请使用自定义充值。",
    "topup_err_over_single_limit": "单笔充值不能超过{limit}元，请分次充值。",
    "topup_err_custom_range": "自定义金额须在{min}到{max}元之间。",
    "topup_err_custom_step": "自定义金额须为{step}元的整数倍，例如 {step}、{step}0。",
    "topup_err_daily_limit": "今日充值已接近上限（每日{limit}元），今天还可充值 {remaining} 元。",
    "topup_err_not_bound": "您还没有绑定校园卡。请在公众号回复「绑定」完成绑定后再充值。",
    "topup_err_card_frozen": "您的校园卡已冻结，暂不能充值。请持学生证到校园卡服务中心办理解冻。",
    "topup_err_card_lost": "您的校园卡已挂失，不能充值。补办新卡后即可继续充值，请到校园卡服务中心办理。",
    "topup_err_card_graduated": "毕业生账户不能再充值。如需取出余额，请到校园卡服务中心办理。",
    "topup_err_pay_unavailable": "微信支付暂时繁忙，订单未创建，没有扣款。请稍后再试。",
    "topup_err_not_found": "没有找到这笔订单。",
    "topup_page_title": "校园卡充值",
    "topup_card_line": "{name} · 当前余额 {balance} 元",
    "topup_quick_title": "快捷充值（立即到账）",
    "topup_quick_item": "实付 {pay} 元",
    "topup_fee_rule": "快捷充值另收 {rate}% 手续费，按分四舍五入；例如充 {example} 元，实付 {example_pay} 元，到账 {example} 元。",
    "topup_custom_title": "自定义金额（1–3分钟到账）",
    "topup_custom_hint": "{min}–{max} 元，须为 {step} 元的整数倍，无手续费。",
    "topup_custom_placeholder": "输入金额（元）",
    "topup_pay_button": "微信支付",
    "topup_remaining": "今日还可充值 {remaining} 元（每日上限 {daily} 元，单笔上限 {single} 元）。",
    "topup_peak": "现在是充值高峰时段（{hours}），自定义充值到账可能较慢，建议错峰充值。",
    "topup_scam": "防骗提醒：学校不会以任何理由索要支付密码；「代充优惠」「低价充值」都是诈骗。",
    "topup_refund_rule": "误充值不能原路退回，也没有在线退款：请持学生卡到{center}现场办理。",
    "topup_js_processing": "支付处理中，请稍候…（一般几秒内到账，最迟几分钟，无需重复支付）",
    "topup_js_success": "充值成功！到账 {amount} 元，当前余额 {balance} 元。",
    "topup_js_cancel": "您已取消支付，没有扣款。",
    "topup_js_fail": "支付没有完成：{reason}",
    "topup_js_closed": "订单已关闭，没有扣款。如需充值请重新下单。",
    "topup_js_not_in_wechat": "请在微信中打开此页面完成支付。",
    "topup_js_choose": "请先选择或输入金额。",
    "topup_blocked_title": "暂时不能充值",
    # --- auto-debit and notices (handlers/autodebit.py, handlers/notices.py) ---
}
