"""Issue 14.4: English that reads naturally. Every notice kind's money in English carries no 元; the service center is
told in the reader's language; "1 transaction", "on 1 September", "until the 5th of the next month"."""

from __future__ import annotations

from typing import Any

from bot import notices
from bot.texts import Localized, ordinal, t
from tests.support import autodebit as ad

OPENID = "oEnglishReader0000000001"


def test_every_notice_kind_in_english_has_no_yuan_sign(live: Any) -> None:
    with live.session() as db:
        for kind, template in live.cfg.notices.templates.items():
            built = notices.build(db, live.cfg, kind, OPENID, f"en:{kind}", "en", **{name: 1234 for name in template.fields})
            assert "元" not in str(built.data) and "12.34 yuan" in str(built.data), (kind, built.data)
            built_zh = notices.build(db, live.cfg, kind, OPENID, f"zh:{kind}", "zh", **{name: 1234 for name in template.fields})
            assert "12.34元" in str(built_zh.data)


def test_service_center_in_the_readers_language(live: Any, wx: Any) -> None:
    ad.student(live, OPENID, lang="en", status="lost")
    english = wx.click(OPENID, "BALANCE").content
    assert "the Card Service Center, Student Center 1F" in english and "服务中心" not in english, english
    chinese_reader = "oChineseReader0000000001"
    ad.student(live, chinese_reader, student_no="20230002", status="lost")
    chinese = wx.click(chinese_reader, "BALANCE").content
    assert "学生活动中心一楼校园卡服务中心" in chinese and "Card Service Center" not in chinese, chinese
    assert Localized("中文").told("en") == "中文"  # no English given: the Chinese one


def test_one_transaction_and_dates_read_naturally(live: Any, wx: Any) -> None:
    ad.student(live, OPENID, lang="en", balance_fen=0)
    assert ad.entry(live, "20230001", 500).status_code == 200  # one subsidy this month
    bill = wx.text(OPENID, "bills")
    text = bill.articles[0]["Description"] if bill.type == "news" else bill.content
    assert "(1 transaction)" in text, text
    page = ad.logged_in(live, OPENID).page().text
    assert "on 1 September" in page and "until the 5th of the next month" in page
    assert "in month" not in page and "until day" not in page
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "23rd",
        "31st",
    ]
    assert t("zh", "bills_totals_one", income="5.00", spent="0.00", count=1).endswith("（共1笔）")
