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
    # --- top-up (handlers/topup.py, bot/pages/topup.py) ---
    # --- auto-debit and notices (handlers/autodebit.py, handlers/notices.py) ---
}
