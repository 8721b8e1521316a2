"""Property-based fuzzing of ``POST /wechat`` over real HTTP, correctly signed (plain and AES), with hypothesis.

Every message type and event WeChat sends, every field filled with plausible, hostile or arbitrary text, fields
dropped or added, raw or CDATA or escaped: the answer is 200 (a well-formed reply for the sender, or ``success``)
or 400 for XML we cannot read, within WeChat's 5 s, and never a 500. A second property does the same to the
answers inside every dialog state the router knows.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from defusedxml import ElementTree as SafeET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.chat.router import Router
from bot.emulator.push import cdata
from tests.support.reliability import bound, new_card, tally

BOUND = "oFuzzBoundUser0000000001"
FRESH = "oFuzzFreshUser0000000001"
HOSTILE = [
    "",
    " ",
    "]]>",
    "a]]>b<![CDATA[c",
    "<xml><MsgType>event</MsgType></xml>",
    "'; DROP TABLE cardholders; --",
    "1 OR 1=1",
    '" OR ""="',
    "%s%s%n",
    "{0}{lang}{phone}",
    "😀🎉💳👨‍👩‍👧",
    "\u202e\u200b\ufeff",
    "\t\r\n",
    "\x00\x01\x08\x1b",
    "２０２３０００１",
    "２０２３ ０００１",
    "20230001",
    "张三",
    "011230",
    "-1",
    "99999999999999999999999999",
    "NaN",
    "&amp;&lt;&#0;&#x1F600;",
    "x" * 3000,
    "余额",
    "绑定",
    "取消",
]
SETTINGS = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_N", "150")), deadline=None, suppress_health_check=list(HealthCheck), database=None
)

utf8 = st.characters(codec="utf-8")  # any code point that can be sent at all (no lone surrogates)
text_values = st.one_of(st.sampled_from(HOSTILE), st.text(utf8, max_size=80), st.text(utf8, max_size=300))
numbers = st.one_of(st.integers(min_value=0, max_value=2**63).map(str), text_values)
openids = st.one_of(st.sampled_from([BOUND, FRESH]), st.from_regex(r"^[A-Za-z0-9_\-]{1,64}$", fullmatch=True), text_values)
events = ["subscribe", "unsubscribe", "SCAN", "CLICK", "VIEW", "TEMPLATESENDJOBFINISH", "LOCATION", "MASSSENDJOBFINISH", "whatever"]


def _fields_for(kind: str, event: str, router: Router) -> dict[str, Any]:
    """Plausible strategies for the fields WeChat sends with ``kind`` (and ``event``); ``pushes`` mixes in hostile text."""
    keys = sorted(router.keys("click")) + ["qrscene_123", "http://example.invalid/x", ""]
    ints = st.integers(min_value=0, max_value=2**63).map(str)
    floats = st.floats(min_value=-180, max_value=180, allow_nan=False).map(str)
    words = st.one_of(
        st.sampled_from(sorted(router.keys("text"))), st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), max_size=60)
    )
    per_kind: dict[str, dict[str, Any]] = {
        "text": {"Content": words},
        "image": {"PicUrl": st.just("http://example.invalid/p.jpg"), "MediaId": words},
        "voice": {"MediaId": words, "Format": st.sampled_from(["amr", "speex"]), "Recognition": words},
        "video": {"MediaId": words, "ThumbMediaId": words},
        "shortvideo": {"MediaId": words, "ThumbMediaId": words},
        "location": {"Location_X": floats, "Location_Y": floats, "Scale": ints, "Label": words},
        "link": {"Title": words, "Description": words, "Url": st.just("http://example.invalid/a")},
        "event": {
            "Event": st.just(event),
            "EventKey": st.one_of(st.sampled_from(keys), words),
            "Ticket": words,
            "MenuId": ints,
            "MsgID": ints,
            "Status": st.sampled_from(["success", "failed:user block", "failed: system failed"]),
            "Latitude": floats,
            "Longitude": floats,
            "Precision": floats,
        },
    }
    fields = per_kind.get(kind, {"Content": words})
    return fields if kind == "event" else {"MsgId": ints, **fields}


@st.composite
def pushes(draw: Any, router: Router) -> tuple[str, str, str]:
    """(sender, xml body, mode): mostly what WeChat sends, with one in four values hostile or arbitrary."""
    kind = draw(st.sampled_from(["text", "image", "voice", "video", "shortvideo", "location", "link", "event", "event", "event", "file"]))
    event = draw(st.sampled_from(events))
    sender = draw(st.sampled_from([BOUND, FRESH])) if draw(st.integers(0, 9)) else draw(openids)
    fields: dict[str, str] = {
        "ToUserName": "gh_cardbot_demo",
        "FromUserName": sender,
        "CreateTime": str(int(time.time())),
        "MsgType": kind,
    }
    fields.update({name: draw(strategy) for name, strategy in _fields_for(kind, event, router).items() if draw(st.integers(0, 5))})
    for name in list(fields):
        if name != "FromUserName" and not draw(st.integers(0, 11)):
            fields[name] = draw(numbers if name in ("CreateTime", "MsgId", "MsgID") else text_values)
    if not draw(st.integers(0, 9)):
        fields.pop(draw(st.sampled_from(sorted(fields))))  # a required field may go missing too
    if not draw(st.integers(0, 4)):
        fields[draw(st.from_regex(r"^[A-Za-z][A-Za-z0-9_]{0,20}$", fullmatch=True))] = draw(text_values)
    parts = []
    for name, value in fields.items():
        how = draw(st.sampled_from(["cdata"] * 6 + ["escaped", "raw"]))
        body = cdata(value) if how == "cdata" else escape(value) if how == "escaped" else value
        parts.append(f"<{name}>{body}</{name}>")
    return sender, "<xml>" + "".join(parts) + "</xml>", draw(st.sampled_from(["plain", "plain", "aes", "compat"]))


def _check_answer(reply: Any, sender: str, took: float) -> None:
    assert reply.status in (200, 400), (reply.status, reply.raw[:300])
    assert took < 5, took
    if reply.status == 200 and not reply.empty:
        root = SafeET.fromstring(reply.raw.encode())
        assert root.findtext("ToUserName") == sender
        assert root.findtext("MsgType") in ("text", "news")


def _post(wx: Any, sender: str, xml: str, mode: str) -> tuple[Any, float]:
    t0 = time.monotonic()
    try:
        query, body = wx.envelope(xml, mode)
    except Exception:  # the XML is too broken even to wrap for AES (compat/safe mode need to parse it): send it plain
        query, body = wx.envelope(xml, "plain")
        mode = "plain"
    status, text = wx.post(f"/wechat?{urlencode(query)}", {"Content-Type": "text/xml"}, body)
    try:
        return wx.read_reply(status, text, mode), time.monotonic() - t0
    except Exception as exc:
        raise AssertionError(f"unreadable reply {text!r} to {xml!r}") from exc


def test_fuzzed_pushes_never_500(live):
    card_id = new_card(live)
    bound(live, BOUND, card_id)
    wx = live.pusher()
    seen = {"200": 0, "400": 0}

    @SETTINGS
    @given(pushes(live.router))
    def prop(push: tuple[str, str, str]) -> None:
        sender, xml, mode = push
        reply, took = _post(wx, sender, xml, mode)
        tally("fuzzed pushes")
        seen[str(reply.status)] = seen.get(str(reply.status), 0) + 1
        _check_answer(reply, sender, took)

    prop()
    assert seen["200"] > 20 and seen["400"] > 5, seen  # both paths were really exercised


def test_fuzzed_dialog_answers_never_500(live):
    card_id = new_card(live)
    bound(live, BOUND, card_id)
    wx = live.pusher()
    states = sorted(live.router.keys("state"))
    assert "bind.password" in states

    @SETTINGS
    @given(st.sampled_from(states), st.sampled_from([BOUND, FRESH]), st.one_of(st.sampled_from(HOSTILE), st.text(utf8, max_size=200)))
    def prop(state: str, sender: str, answer: str) -> None:
        live.services.dialogs.set(sender, state, {"student_no": "20230001", "name": "张三", "cardholder_id": card_id})
        xml = wx.xml(sender, "text", {"Content": answer, "MsgId": str(time.time_ns())})
        reply, took = _post(wx, sender, xml, "plain")
        tally("fuzzed dialog answers")
        _check_answer(reply, sender, took)
        if reply.status == 200:
            assert reply.content, reply.raw  # a dialog answer is always answered

    prop()
