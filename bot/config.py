"""Typed configuration: loaded once from TOML plus ``CARDBOT_<SECTION>__<KEY>`` overrides.

Every key has a default that runs the demo, so ``cardbot demo`` works with no file at all.
A bad value stops start-up with a message that names the key (``topup.single_limit: ...``).
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.texts import Localized

# Secrets that ship with demo values (the demo runs with no file at all); production must set its own.
_SECRETS = (
    "server.secret_key",
    "cardsystem.secret",
    "electricity.secret",
    "bank.secret",
    "wechat.secret",
    "wechat.token",
    "wechat.encoding_aes_key",
    "pay.apiv3_key",
)
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-(?:([01]\d|2[0-3]):([0-5]\d)|(24):(00))$")


# An address the bot appends paths to: kept without a trailing slash.
BaseUrl = Annotated[str, AfterValidator(lambda v: v.rstrip("/"))]


class ConfigError(Exception):
    """Raised with a readable message naming the offending key."""


class TimeWindow:
    """A daily window such as ``06:00-20:40``, end excluded; it may wrap midnight (``23:00-07:00``).

    ``24:00`` ends a window at midnight, so ``00:00-24:00`` is the whole day (``00:00-00:00`` is empty, and
    ``00:00-23:59`` would shut for the day's last minute). A plain class (not a model) so an environment override is
    read as text, not JSON.
    """

    __slots__ = ("start", "end", "to_midnight")

    def __init__(self, start: time, end: time, *, to_midnight: bool = False) -> None:
        self.start = start
        self.end = end
        self.to_midnight = to_midnight

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        m = _WINDOW.match(str(text).strip())
        if not m:
            raise ValueError(f"expected HH:MM-HH:MM (the end may be 24:00), got {text!r}")
        h1, m1 = int(m[1]), int(m[2])
        if m[5]:
            return cls(time(h1, m1), time(0, 0), to_midnight=True)
        return cls(time(h1, m1), time(int(m[3]), int(m[4])))

    def contains(self, t: time) -> bool:
        if self.to_midnight and self.start == time(0, 0):
            return True
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{'24:00' if self.to_midnight else format(self.end, '%H:%M')}"

    def __repr__(self) -> str:
        return f"TimeWindow({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TimeWindow) and (self.start, self.end, self.to_midnight) == (other.start, other.end, other.to_midnight)

    def __hash__(self) -> int:
        return hash((self.start, self.end, self.to_midnight))

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_plain_validator_function(_window, serialization=core_schema.plain_serializer_function_ser_schema(str))


def _window(v: Any) -> TimeWindow:
    return v if isinstance(v, TimeWindow) else TimeWindow.parse(str(v))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class WeChatConfig(_Section):
    appid: str = "wxcardbotdemo0001"
    secret: str = "demo-app-secret-change-me"
    token: str = "cardbotdemotoken"
    encoding_aes_key: str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
    api_base_url: BaseUrl = "https://api.weixin.qq.com"
    oauth_base_url: BaseUrl = "https://open.weixin.qq.com"
    max_clock_skew_seconds: int = Field(300, ge=30, le=3600)
    request_timeout_seconds: float = Field(3.0, gt=0, le=30)
    reply_budget_seconds: float = Field(4.0, gt=0, lt=5)

    @field_validator("encoding_aes_key")
    @classmethod
    def _aes_key(cls, v: str) -> str:
        if v and len(v) != 43:
            raise ValueError("must be the 43-character EncodingAESKey from the official account settings")
        return v


class PayConfig(_Section):
    mchid: str = "1900000109"
    apiv3_key: str = "cardbotdemoapiv3key0123456789abc"
    private_key_path: str = "var/keys/merchant_private.pem"
    cert_serial_no: str = "4A1B2C3D4E5F60718293A4B5C6D7E8F901234567"
    public_key_path: str = "var/keys/platform_public.pem"
    public_key_id: str = "PUB_KEY_ID_0119000001092026112500000000000000"
    notify_url: str = "http://127.0.0.1:8000/pay/notify"
    api_base_url: BaseUrl = "https://api.mch.weixin.qq.com"
    order_expire_minutes: int = Field(15, ge=5, le=120)

    @field_validator("apiv3_key")
    @classmethod
    def _v3key(cls, v: str) -> str:
        if len(v.encode()) != 32:
            raise ValueError("must be exactly 32 bytes (the APIv3 key set in the merchant platform)")
        return v


class DatabaseConfig(_Section):
    url: str = "sqlite:///var/cardbot.db"
    echo: bool = False


class RedisConfig(_Section):
    url: str = ""
    key_prefix: str = "cardbot:"
    embedded_path: str = "var/redis.db"


class ServerConfig(_Section):
    public_base_url: BaseUrl = "http://127.0.0.1:8000"
    secret_key: str = "demo-secret-key-change-me-in-production"
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    secure_cookies: bool = False
    admin_token: str = ""
    h5_writes_per_minute: int = Field(30, ge=1)  # per openid, H5 JSON APIs that change something
    h5_reads_per_minute: int = Field(120, ge=1)  # per openid, H5 JSON APIs that only read (the page polls an order)


class SchoolConfig(_Section):
    name: str = "示例大学 Demo University"
    service_center: str = "学生活动中心一楼校园卡服务中心（周一至周五 8:30-17:00）"
    service_center_en: str = "the Card Service Center, Student Center 1F (Mon-Fri 8:30-17:00)"  # empty: the Chinese one
    service_phone: str = "010-12345678"

    @property
    def center(self) -> Localized:
        """The service center as each reader is told it (``bot.texts.t`` picks the reader's language)."""
        return Localized(self.service_center, self.service_center_en)


class TopupConfig(_Section):
    quick_amounts: list[int] = [50, 100, 200]
    quick_fee_rate: float = Field(0.003, ge=0, lt=0.1)
    custom_min: int = Field(10, gt=0)
    custom_max: int = Field(500, gt=0)
    custom_step: int = Field(10, gt=0)
    single_limit: int = Field(500, gt=0)
    daily_limit: int = Field(2000, gt=0)
    peak_hours: list[TimeWindow] = [TimeWindow.parse("07:30-08:30"), TimeWindow.parse("11:30-12:30")]
    stuck_after_minutes: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> TopupConfig:
        if self.custom_min > self.custom_max:
            raise ValueError("custom_min must not exceed custom_max")
        if any(a <= 0 or a > self.single_limit for a in self.quick_amounts):
            raise ValueError("quick_amounts must be positive and within single_limit")
        if self.single_limit > self.daily_limit:
            raise ValueError("single_limit must not exceed daily_limit")
        return self


class AutodebitConfig(_Section):
    threshold: int = Field(20, gt=0)
    amount: int = Field(50, gt=0)
    bank_hours: TimeWindow = TimeWindow.parse("06:00-20:40")
    renew_month: int = Field(9, ge=1, le=12)
    refund_request_day: int = Field(5, ge=1, le=28)
    reminder_days_before: int = Field(14, ge=1, le=60)


class BankConfig(_Section):
    """The auto top-up bank (protocol: ``bot/adapters/bank.py``): ``sandbox`` is the emulator's bank (empty ``api_base_url``
    means the WeChat API base); ``http`` is the partner bank at ``api_base_url``, which it requires. ``secret`` signs
    every request to the bank (HMAC, ``X-Bank-*`` headers)."""

    adapter: Literal["sandbox", "http"] = "sandbox"
    api_base_url: BaseUrl = ""
    secret: str = "demo-bank-secret-change-me"
    timeout_seconds: float = Field(5.0, gt=0, le=30)

    @model_validator(mode="after")
    def _http_needs_url(self) -> BankConfig:
        if self.adapter == "http" and not self.api_base_url.startswith(("https://", "http://")):
            raise ValueError('adapter "http" needs api_base_url (the bank\'s https:// address)')
        return self


class CardSystemConfig(_Section):
    """The school's card system (docs/card-system.md): ``ledger`` = the bot's own ledger, ``http`` = cardsys/1.

    An empty ``api_base_url`` means the emulator at the WeChat API base + ``/emulator`` (demo and tests); in
    production the http adapter needs the school's own. ``secret`` signs both directions, including the card
    system's pushes to ``/integration/card-entries``.
    """

    adapter: Literal["ledger", "http"] = "ledger"
    api_base_url: BaseUrl = ""
    secret: str = "demo-cardsys-secret-change-me"
    timeout_seconds: float = Field(5.0, gt=0, le=30)
    # verify, account and entries: a student is waiting inside WeChat's 5 s reply window, so these give up sooner
    # (the reply then says the card system is not answering and shows the last known balance)
    read_timeout_seconds: float = Field(2.0, gt=0, le=4)


class ElectricityConfig(_Section):
    """Dorm electricity (docs/electricity.md): ``http`` speaks power/1 to the school's electricity system; an empty
    ``api_base_url`` is the emulator's (demo and tests). Amounts are yuan, like ``[topup]``'s, without a fee; the
    daily limit counts this product's orders only. ``low_kwh`` is a room's alert threshold until someone changes it."""

    adapter: Literal["http"] = "http"
    api_base_url: BaseUrl = ""
    secret: str = "demo-power-secret-change-me"
    timeout_seconds: float = Field(5.0, gt=0, le=30)
    read_timeout_seconds: float = Field(2.0, gt=0, le=4)
    quick_amounts: list[int] = [20, 50, 100]
    custom_min: int = Field(10, gt=0)
    custom_max: int = Field(300, gt=0)
    custom_step: int = Field(10, gt=0)
    single_limit: int = Field(300, gt=0)
    daily_limit: int = Field(600, gt=0)
    low_kwh: float = Field(10, ge=0, le=1000)
    max_rooms: int = Field(5, ge=1, le=20)  # rooms one WeChat account may keep

    @model_validator(mode="after")
    def _consistent(self) -> ElectricityConfig:
        if self.custom_min > self.custom_max:
            raise ValueError("custom_min must not exceed custom_max")
        if any(a <= 0 or a > self.single_limit for a in self.quick_amounts):
            raise ValueError("quick_amounts must be positive and within single_limit")
        if self.single_limit > self.daily_limit:
            raise ValueError("single_limit must not exceed daily_limit")
        return self


class BindingConfig(_Section):
    max_failures: int = Field(5, ge=1)  # per WeChat account
    lockout_minutes: int = Field(30, ge=1)
    card_max_failures: int = Field(20, ge=1)  # per card, across accounts: against guessing from many accounts
    card_lockout_minutes: int = Field(60, ge=1)
    dialog_ttl_seconds: int = Field(600, ge=30)
    max_bindings_per_card: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _card_limit(self) -> BindingConfig:
        if self.card_max_failures < self.max_failures:
            raise ValueError("card_max_failures must not be below max_failures (one account would lock the card)")
        return self


class NoticeTemplate(_Section):
    template_id: str
    fields: dict[str, str]
    urgent: bool = True


def _default_notices() -> dict[str, NoticeTemplate]:
    return {
        "topup_receipt": NoticeTemplate(
            template_id="TPL_TOPUP_RECEIPT",
            fields={"amount": "amount1", "fee": "amount2", "balance": "amount3", "time": "time4"},
        ),
        "autodebit_success": NoticeTemplate(
            template_id="TPL_AUTODEBIT_OK",
            fields={"amount": "amount1", "balance": "amount2", "time": "time3"},
        ),
        "autodebit_failure": NoticeTemplate(
            template_id="TPL_AUTODEBIT_FAIL",
            fields={"amount": "amount1", "reason": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "agreement_expiring": NoticeTemplate(
            template_id="TPL_AGREEMENT",
            fields={"status": "thing1", "date": "time2", "advice": "thing3"},
            urgent=False,
        ),
        "agreement_expired": NoticeTemplate(
            template_id="TPL_AGREEMENT",
            fields={"status": "thing1", "date": "time2", "advice": "thing3"},
            urgent=False,
        ),
        "binding_added": NoticeTemplate(
            template_id="TPL_BINDING_ALERT",
            fields={"card": "character_string1", "event": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "binding_guessed": NoticeTemplate(
            template_id="TPL_BINDING_ALERT",
            fields={"card": "character_string1", "event": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "credit_delayed": NoticeTemplate(
            template_id="TPL_CREDIT_STATUS",
            fields={"amount": "amount1", "status": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "credit_refused": NoticeTemplate(
            template_id="TPL_CREDIT_STATUS",
            fields={"amount": "amount1", "status": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "refund_result": NoticeTemplate(
            template_id="TPL_REFUND",
            fields={"amount": "amount1", "result": "thing2", "time": "time3"},
        ),
        "power_receipt": NoticeTemplate(
            template_id="TPL_POWER_RECEIPT",
            fields={"room": "thing1", "amount": "amount2", "kwh": "thing3", "time": "time4"},
        ),
        "power_delayed": NoticeTemplate(
            template_id="TPL_CREDIT_STATUS",
            fields={"amount": "amount1", "status": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "power_refused": NoticeTemplate(
            template_id="TPL_CREDIT_STATUS",
            fields={"amount": "amount1", "status": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "power_low": NoticeTemplate(
            template_id="TPL_POWER_LOW",
            fields={"room": "thing1", "kwh": "thing2", "advice": "thing3", "time": "time4"},
            urgent=False,
        ),
        "card_lost": NoticeTemplate(
            template_id="TPL_CARD_STATUS",
            fields={"card": "character_string1", "status": "thing2", "advice": "thing3", "time": "time4"},
        ),
        "spend_alert": NoticeTemplate(
            template_id="TPL_SPEND_ALERT",
            fields={"amount": "amount1", "merchant": "thing2", "balance": "amount3", "time": "time4"},
            urgent=False,
        ),
        "large_spend_alert": NoticeTemplate(
            template_id="TPL_SPEND_ALERT",
            fields={"amount": "amount1", "merchant": "thing2", "balance": "amount3", "time": "time4"},
        ),
        "low_balance_alert": NoticeTemplate(
            template_id="TPL_LOW_BALANCE",
            fields={"balance": "amount1", "threshold": "amount2", "advice": "thing3", "time": "time4"},
            urgent=False,
        ),
        "card_found": NoticeTemplate(
            template_id="TPL_CARD_STATUS",
            fields={"card": "character_string1", "status": "thing2", "advice": "thing3", "time": "time4"},
        ),
    }


class NoticesConfig(BaseModel):
    model_config = ConfigDict(extra="allow", validate_default=True)
    quiet_hours: TimeWindow = TimeWindow.parse("23:00-07:00")
    max_attempts: int = Field(8, ge=1)
    batch_size: int = Field(100, ge=1)
    _templates: dict[str, NoticeTemplate] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _merge_templates(self) -> NoticesConfig:
        extra = dict(self.__pydantic_extra__ or {})
        merged = _default_notices()
        for kind, raw in extra.items():
            merged[kind] = NoticeTemplate.model_validate(raw)
        self.__pydantic_extra__ = {}
        self._templates = merged
        return self

    @property
    def templates(self) -> dict[str, NoticeTemplate]:
        """Every notice kind's template: the defaults merged with the ``[notices.<kind>]`` tables."""
        return self._templates

    def template(self, kind: str) -> NoticeTemplate:
        return self._templates[kind]


class GraduatesConfig(_Section):
    freeze_after_months: int = Field(3, ge=0)


class MenuConfig(_Section):
    path: str = ""
    english_path: str = ""  # the English conditional menu; empty: menus/menu.en.toml beside menu.toml in the package
    english_tag: str = Field("English", min_length=1, max_length=10)  # the user tag it matches (created when missing)


class SupportConfig(_Section):
    """A person when the bot cannot help (``人工``, or ``misunderstood`` messages in a row). ``transfer = true`` hands
    the chat to the account's WeChat customer service (it must be enabled for the account; ``kf_account`` picks one
    agent, empty = any); otherwise the reply gives ``phone`` (empty: ``[school] service_phone``) and the hours.
    Outside ``hours`` on ``days`` (ISO weekdays, 1 = Monday) the reply says when someone answers."""

    transfer: bool = False
    kf_account: str = ""
    phone: str = ""
    hours: TimeWindow = TimeWindow.parse("08:30-17:00")
    days: list[int] = [1, 2, 3, 4, 5]
    misunderstood: int = Field(2, ge=1)

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[int]) -> list[int]:
        if not v or any(not 1 <= d <= 7 for d in v):
            raise ValueError("must list ISO weekdays 1 (Monday) to 7 (Sunday)")
        return sorted(set(v))


class FaqConfig(_Section):
    """The school's FAQ and synonyms (format: ``bot/texts/faq.toml``, which is used when ``path`` is empty)."""

    path: str = ""


class AdminConfig(_Section):
    """The service center's web console at ``/admin`` (bot/admin). ``enabled = "auto"``: on in the demo, off in
    production until set ``"on"``; on in production it needs ``server.public_base_url`` on https (its cookie is Secure)."""

    enabled: Literal["auto", "on", "off"] = "auto"
    idle_minutes: int = Field(30, ge=1, le=480)  # a session ends after this long without a request
    login_attempts_per_minute: int = Field(5, ge=1)  # per account name and per client address
    setup_link_hours: int = Field(24, ge=1, le=168)  # how long `cardbot admin add-user`'s link works
    totp_issuer: str = "campus-card-bot"


class EmulatorConfig(_Section):
    enabled: bool = True
    notify_retry_scale: float = Field(1.0, gt=0, le=1.0)
    notify_duplicate_rate: float = Field(0.0, ge=0, le=1)
    template_daily_quota: int = Field(100000, ge=0)
    token_daily_limit: int = Field(2000, ge=0)
    stable_token_daily_limit: int = Field(10000, ge=0)
    menu_daily_limit: int = Field(1000, ge=0)
    cs_window_hours: int = Field(48, ge=1)
    cs_max_in_window: int = Field(5, ge=0)
    cs_click_window_seconds: int = Field(60, ge=1)
    cs_click_max: int = Field(3, ge=0)
    push_delay_seconds: float = Field(0.5, ge=0, le=60)
    token_ttl_seconds: int = Field(7200, ge=1)
    token_grace_seconds: int = Field(300, ge=0)
    auto_deliver_pushes: bool = True
    merchant_public_key_path: str = "var/keys/merchant_public.pem"
    platform_private_key_path: str = "var/keys/platform_private.pem"
    keys_dir: str = "var/keys"


class DevicesConfig(_Section):
    """Re-verification on a new browser (bot/web/device.py)."""

    reverify: bool = True  # a money action from a browser this account has not verified asks for the card password
    remember_days: int = Field(400, ge=1)  # how long the signed device cookie remembers a verified browser


class AlertsConfig(_Section):
    """Alerts the student chooses on the 提醒设置 page (bot/alerts.py); amounts in whole yuan."""

    low_threshold: int = Field(20, ge=1)  # the low-balance alert's default threshold
    large_threshold: int = Field(100, ge=1)  # the large-spend alert's default threshold
    max_threshold: int = Field(2000, ge=1)  # the highest threshold a student may choose
    merge_minutes: int = Field(3, ge=0)  # spends within this long of the first one merge into one alert
    daily_cap: int = Field(20, ge=1)  # alert notices per account a day


class Config(BaseSettings):
    """The whole configuration. Sections mirror ``config.example.toml``."""

    model_config = SettingsConfigDict(env_prefix="CARDBOT_", env_nested_delimiter="__", extra="forbid")

    wechat: WeChatConfig = WeChatConfig()
    pay: PayConfig = PayConfig()
    database: DatabaseConfig = DatabaseConfig()
    redis: RedisConfig = RedisConfig()
    server: ServerConfig = ServerConfig()
    school: SchoolConfig = SchoolConfig()
    topup: TopupConfig = TopupConfig()
    autodebit: AutodebitConfig = AutodebitConfig()
    bank: BankConfig = BankConfig()
    cardsystem: CardSystemConfig = CardSystemConfig()
    electricity: ElectricityConfig = ElectricityConfig()
    binding: BindingConfig = BindingConfig()
    devices: DevicesConfig = DevicesConfig()
    alerts: AlertsConfig = AlertsConfig()
    notices: NoticesConfig = NoticesConfig()
    graduates: GraduatesConfig = GraduatesConfig()
    menu: MenuConfig = MenuConfig()
    admin: AdminConfig = AdminConfig()
    support: SupportConfig = SupportConfig()
    faq: FaqConfig = FaqConfig()
    emulator: EmulatorConfig = EmulatorConfig()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment wins over the file (passed as init kwargs).
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _cardsystem_url(self) -> Config:
        if self.cardsystem.adapter == "http" and not self.emulator.enabled and not self.cardsystem.api_base_url:
            raise ValueError("cardsystem.api_base_url: the http card system needs the school's address in production")
        return self

    @property
    def menu_path(self) -> Path:
        if self.menu.path:
            return Path(self.menu.path)
        return Path(__file__).resolve().parent.parent / "menus" / "menu.toml"

    @property
    def menu_english_path(self) -> Path:
        if self.menu.english_path:
            return Path(self.menu.english_path)
        return Path(__file__).resolve().parent.parent / "menus" / "menu.en.toml"

    @property
    def faq_path(self) -> Path:
        return Path(self.faq.path) if self.faq.path else Path(__file__).resolve().parent / "texts" / "faq.toml"

    @property
    def is_production(self) -> bool:
        return not self.emulator.enabled

    @property
    def admin_enabled(self) -> bool:
        """The console is mounted: as set, else only in the demo (production opts in)."""
        return self.admin.enabled == "on" or (self.admin.enabled == "auto" and not self.is_production)

    def production_problems(self) -> list[str]:
        """What production must not run with, by key and never by value: a secret still at its demo default or
        empty, an embedded Redis (each process would get its own) and the emulator's sandbox bank."""
        problems = []
        for name in _SECRETS:
            section, key = name.split(".")
            part = getattr(self, section)
            if getattr(part, key).strip() in ("", type(part).model_fields[key].default):
                problems.append(f"{name}: still the demo value or empty")
        if not self.redis.url:
            problems.append("redis.url: empty (embedded Redis is for the demo only)")
        if self.bank.adapter == "sandbox":
            problems.append("bank.adapter: the sandbox bank is the emulator's")
        if self.admin_enabled and not self.server.public_base_url.startswith("https://"):
            problems.append("admin.enabled: the console needs server.public_base_url on https://")
        if not self.electricity.api_base_url:
            problems.append("electricity.api_base_url: empty (the emulator's electricity system)")
        return problems

    def check_production(self) -> None:
        """Refuse to run production (emulator off) on demo settings; the demo and tests (emulator on) pass."""
        if self.is_production and (problems := self.production_problems()):
            raise ConfigError("refusing to run in production ([emulator] enabled = false): " + "; ".join(problems))


def _format_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        lines.append(f"{key}: {err['msg']}")
    return "invalid configuration: " + "; ".join(lines)


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Config:
    """Load config from ``path`` (or $CARDBOT_CONFIG, or ./config.toml, or demo defaults)."""
    data: dict[str, Any] = {}
    chosen = path or os.environ.get("CARDBOT_CONFIG") or ("config.toml" if Path("config.toml").exists() else None)
    if chosen:
        p = Path(chosen)
        if not p.exists():
            raise ConfigError(f"config file not found: {p}")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from exc
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    try:
        return Config(**data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
