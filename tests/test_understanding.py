"""Understanding what students type (issue 15): the labelled set of student messages, scam warnings, FAQ answers
and close calls, and the hand-off to a person, recorded by the emulator."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.chat.routes import build_router
from bot.chat.understand import Kind
from bot.config import load_config
from tests.support.autodebit import at

DATA = Path(__file__).parent / "data" / "student_messages.tsv"
OID = "oUnderstand0000000000001"


def _labelled() -> list[tuple[str, str]]:
    rows = []
    for line in DATA.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, text = line.split("\t", 1)
            rows.append((label, text))
    return rows


def _read(router: Any, clicks: dict[Any, str], text: str) -> list[str]:
    """What the router does with ``text``: [label] or ["choices", label, ...] (labels as in the data file)."""
    ctx = SimpleNamespace(dialog=None, expired_dialog=None, meaning=None)
    route = router.pick(SimpleNamespace(type="text", content=text), ctx)
    if route.kind == "fallback":
        return ["none"]
    if route.kind != "understood":
        return ["human" if route.handler.__name__ == "person" else clicks[route.handler]]
    meaning = ctx.meaning
    if meaning.kind in (Kind.SCAM, Kind.HUMAN):
        return [meaning.kind.value]
    labels = [e.id.removeprefix("intent:") if e.id.startswith("intent:") else f"faq:{e.id}" for e in meaning.entries]
    return ["choices", *labels] if meaning.kind is Kind.CHOICES else labels


@pytest.mark.unit
def test_labelled_student_messages_are_understood():
    router = build_router().understand(str(load_config(None).faq_path))
    clicks = {route.handler: route.keys[0] for route in router.table() if route.kind == "click"}
    rows = _labelled()
    assert len(rows) >= 300
    right = first = 0
    wrong, fallen = [], []
    for label, text in rows:
        got = _read(router, clicks, text)
        if got[0] == label:
            right, first = right + 1, first + 1
        elif got[0] == "choices" and label in got:
            right += 1
        else:
            wrong.append(f"  {label:28} {text!r} -> {got}")
        if label.startswith("faq:") and got == ["none"]:
            fallen.append(text)
    costs = []
    for _ in range(3):
        for _, text in rows:
            t0 = time.perf_counter()
            router.pick(SimpleNamespace(type="text", content=text), SimpleNamespace(dialog=None, expired_dialog=None, meaning=None))
            costs.append((time.perf_counter() - t0) * 1000)
    costs.sort()
    print(
        f"\nlabelled set: {len(rows)} messages; accuracy {right / len(rows):.1%} (a close call offering the right one counts), "
        f"first choice {first / len(rows):.1%}\nrouter + matcher per message: mean {statistics.mean(costs):.3f} ms, "
        f"p50 {costs[len(costs) // 2]:.3f} ms, p99 {costs[int(len(costs) * 0.99)]:.3f} ms, max {costs[-1]:.3f} ms"
    )
    print("misread:\n" + "\n".join(wrong))
    assert right / len(rows) >= 0.92
    assert first / len(rows) >= 0.90
    assert not fallen, f"FAQ questions that got the fallback: {fallen}"
    assert statistics.mean(costs) < 1.0


@pytest.mark.unit
def test_exact_words_never_reach_the_matcher():
    """The matcher runs only when nothing exact matched: a known word is answered without it."""
    router = build_router().understand(str(load_config(None).faq_path))
    ctx = SimpleNamespace(dialog=None, expired_dialog=None, meaning=None)
    route = router.pick(SimpleNamespace(type="text", content="  余额 "), ctx)
    assert route.handler.__module__ == "handlers.balance" and ctx.meaning is None


def test_faq_answer_scam_warning_and_close_call(live, wx):
    reply = wx.text(OID, "请问充值不到账怎么办？？")
    assert reply.content.startswith("【充值不到账】") and live.cfg.school.service_phone in reply.content
    reply = wx.text(OID, "有人说可以打八折代充，靠谱吗")
    assert "防骗提醒" in reply.content and "代充" in reply.content
    reply = wx.text(OID, "对方要我的短信验证码")
    assert "验证码" in reply.content and "防骗提醒" in reply.content
    reply = wx.text(OID, "绑定了，但是点充值没反应，试了好几次都不行，是不是系统坏了")
    assert "请直接回复" in reply.content and "· 已绑定但无法充值" in reply.content and "· 充值不到账" in reply.content
    reply = wx.text(OID, "已绑定但无法充值")
    assert reply.content.startswith("【已绑定但无法充值】") and "单笔≤500元" in reply.content
    reply = wx.text(OID, "余额多少")  # an intent: the balance route, which needs a card
    assert "还没有绑定校园卡" in reply.content


def test_english_user_gets_english_answers(live, wx):
    wx.text(OID, "English")
    reply = wx.text(OID, "my top-up didnt arrive 😭 what do i do")
    assert reply.content.startswith("[Top-up not arrived]")
    reply = wx.text(OID, "asdfgh")
    assert reply.content.startswith("Sorry, I did not understand") and "top-up not arrived" in reply.content


LIVE_CONFIG = {"support": {"transfer": True, "days": [1, 2, 3, 4, 5, 6, 7], "hours": "00:00-24:00"}}


def test_person_asked_for_is_handed_to_customer_service(live, wx, wx_aes):
    reply = wx.text(OID, "人工")
    assert reply.transferred and reply.kf_account == ""
    reply = wx_aes.text(OID, "我要找人工客服！！")  # safe mode: the transfer is encrypted like any reply
    assert reply.transferred
    assert [t["openid"] for t in live.emulator.transfers] == [OID, OID]


def test_two_misunderstood_messages_in_a_row_hand_off(live, wx):
    first = wx.text(OID, "qwertyuiop")
    assert "我可以帮您" in first.content and "人工" in first.content and not first.transferred
    assert not live.emulator.transfers
    second = wx.text(OID, "zxcvbnm")
    assert second.transferred
    assert live.emulator.transfers[-1]["openid"] == OID
    third = wx.text(OID, "asdfjkl")  # the count starts again after a hand-off
    assert not third.transferred


def test_understood_message_resets_the_count(live, wx):
    wx.text(OID, "qwertyuiop")
    wx.text(OID, "充值不到账")
    assert not wx.text(OID, "zxcvbnm").transferred


def test_without_transfer_the_phone_and_hours_and_outside_hours_when(make_live):
    live = make_live(support={"transfer": False, "hours": "08:30-17:00", "phone": "010-99998888"})
    wx = live.pusher()
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))  # a Wednesday morning
    reply = wx.text(OID, "人工客服")
    assert reply.type == "text" and "010-99998888" in reply.content and "周一至周五 08:30-17:00" in reply.content
    live.services.clock.freeze(at(2026, 11, 28, 10, 0))  # Saturday
    reply = wx.text(OID, "人工")
    assert "不是人工服务时间" in reply.content and "11月30日 08:30" in reply.content
    live.services.clock.freeze(at(2026, 11, 25, 18, 0))  # Wednesday evening
    reply = wx.text(OID, "human")
    assert "11月26日 08:30" in reply.content
    assert not live.emulator.transfers


def test_transfer_outside_hours_says_when_instead(make_live):
    live = make_live(support={"transfer": True, "kf_account": "kf2001@gh_demo"})
    wx = live.pusher()
    live.services.clock.freeze(at(2026, 11, 25, 10, 0))
    reply = wx.text(OID, "转人工")
    assert reply.transferred and reply.kf_account == "kf2001@gh_demo"
    live.services.clock.freeze(at(2026, 11, 29, 22, 0))  # Sunday night
    reply = wx.text(OID, "转人工")
    assert not reply.transferred and "11月30日 08:30" in reply.content
    assert len(live.emulator.transfers) == 1


def test_student_number_typos_and_phone_numbers_are_told_apart(live, wx):
    wx.text(OID, "绑定")
    assert wx.text(OID, "2023000l").content.startswith("学号应为8–12位数字")
    assert wx.text(OID, "2O230001").content.startswith("学号应为8–12位数字")
    assert wx.text(OID, "１３８１２３４５６７８").content.startswith("这像是手机号，请输入学号")
    assert live.services.dialogs.get(OID).state == "bind.student_no"
    assert "尚未登记" in wx.text(OID, "E12345678").content  # a passport number still takes the passport path
    wx.text(OID, "绑定")
    assert "第2步" in wx.text(OID, "12345678901").content  # 11 digits not starting 13–19: a student number


@pytest.mark.unit
def test_a_broken_faq_file_is_refused_naming_each_problem(tmp_path):
    bad = tmp_path / "faq.toml"
    bad.write_text(
        '[intents.BALANCE]\nzh = "余额"\n\n[[faq]]\nid = "a"\ntitle.zh = "甲"\ntitle.en = "A"\nq.zh = ["甲"]\nq.en = ["a"]\na.zh = "甲"\n\n'
        '[[faq]]\nid = "a"\ntitle.zh = "乙"\nq.zh = ["乙"]\nq.en = ["b"]\na.zh = "乙"\na.en = "B"\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError) as err:
        build_router().understand(str(bad))
    assert "intents.BALANCE: expected zh = [...]" in str(err.value)
    assert "faq[1] 'a': no a.en" in str(err.value) and "faq[2] 'a': id missing or used twice" in str(err.value)
    assert "faq[2] 'a': no title.en" in str(err.value)
