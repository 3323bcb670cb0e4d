"""One settings object, read from the environment once and validated at start-up.

Nothing else in the code base reads ``os.environ``. A bad value stops the process with one line
naming the variable (see ``load_settings``).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, Literal

from limits import parse as parse_limit
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from common.risk_rules import blocked_networks, parse_weights

AppEnv = Literal["development", "test", "production"]
Money = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2)]
CommaList = Annotated[tuple[str, ...], NoDecode]

_DEV_DATABASE_URL = "postgresql+psycopg://savebucks@127.0.0.1:54329/savebucks"
# The ``network`` of a sale made by an approved missing-credit claim: no configured network may
# have this name, so a network's transaction id can never collide with a claim's sale.
CLAIM_NETWORK = "claim"
# RATE_LIMIT_CLICK's largest amount (common/services/clicks.py keeps a stamp per allowed click).
MAX_CLICK_LIMIT = 1000
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
# RabbitMQ, through py-amqp (installed with Celery).
AMQP_SCHEMES = ("amqp://", "amqps://", "pyamqp://")
_PER_NETWORK = ("POSTBACK_SECRET_", "POSTBACK_SCHEME_", "POSTBACK_ALLOWED_IPS_")


class ConfigError(SystemExit):
    """Start-up refused: the message names the variable at fault."""


class NetworkConfig(BaseModel):
    """How one offer network calls us back (``POSTBACK_*_<NETWORK>``)."""

    name: str
    secret: str
    scheme: str = "generic"
    allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


def _split(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    app_env: AppEnv = "development"
    port: int = Field(3003, ge=1, le=65535)
    database_url: str = _DEV_DATABASE_URL
    redis_url: str = "redis://127.0.0.1:6379/0"
    celery_broker_url: str | None = None
    # Pub/sub channels are global to a Redis server (not per database number): the prefix keeps
    # two deployments, or two test runs, sharing one server apart.
    redis_prefix: str = Field("savebucks", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")

    db_pool_size: int = Field(10, ge=1, le=200)
    db_pool_max_overflow: int = Field(5, ge=0, le=200)
    db_pool_timeout: float = Field(10.0, gt=0)
    # What a web request waits for a database connection (its async pool and its write engine)
    # before it answers 503; workers and the CLI wait DB_POOL_TIMEOUT. A short wait is what lets
    # an outage answer fast instead of piling requests up (docs/operations.md "Scaling out").
    web_db_pool_timeout: float = Field(1.0, gt=0, le=60)
    # libpq's connect_timeout in seconds (libpq treats anything under 2 as 2): bounds a connect to
    # a host that does not answer at all. A refused connect fails at once either way.
    db_connect_timeout: int = Field(2, ge=2, le=60)
    db_statement_timeout_ms: int = Field(15_000, ge=0)
    # psycopg prepares a statement server-side once it has run this many times on a connection
    # (0: at once). ``none``/``off``: never, which PgBouncer in transaction pooling mode needs
    # before 1.21 (it does not track prepared statements, so a statement prepared in one
    # transaction is missing on the next server connection). Both the web and the workers.
    database_prepare_threshold: int | None = Field(1, ge=0, le=1000)

    jwt_secret: str = ""
    jwt_issuer: str = "savebucks"
    jwt_audience: str = "savebucks-api"
    access_token_ttl: int = Field(900, ge=30, le=86_400)
    refresh_token_ttl: int = Field(2_592_000, ge=300, le=31_536_000)
    refresh_rotation: bool = False
    refresh_reuse_grace_seconds: int = Field(10, ge=0, le=300)
    # The refresh-token cookie's Secure attribute (docs/console.md): unset means on everywhere
    # but development, where the console is served over plain http://localhost.
    refresh_cookie_secure: bool | None = None
    # The member demo page at GET / (docs/console.md): unset means on in development only.
    demo_page: bool | None = None
    bcrypt_rounds: int = Field(12, ge=4, le=16)
    password_hash_workers: int = Field(2, ge=1, le=64)

    allowed_origins: CommaList = ("http://localhost:3000",)
    trusted_proxies: CommaList = ()
    max_body_bytes: int = Field(1_048_576, ge=1024)

    # The WebSocket hub (docs/api.md, "WebSocket").
    ws_auth_timeout: float = Field(5.0, gt=0, le=60)
    ws_max_frame_bytes: int = Field(32_768, ge=1024, le=1_048_576)
    ws_heartbeat: float = Field(30.0, ge=1, le=600)
    ws_send_queue: int = Field(256, ge=8, le=65_536)
    # SO_SNDBUF of each socket (0: the kernel's autotuning, up to 4 MiB per socket on Linux);
    # bounds what a client that stops reading holds in the kernel before it counts as too slow.
    ws_socket_send_buffer: int = Field(262_144, ge=0, le=16_777_216)
    ws_max_sockets_per_user: int = Field(10, ge=1, le=1000)
    ws_token_grace: float = Field(30.0, ge=0, le=3600)
    ws_history_limit: int = Field(500, ge=1, le=10_000)

    rate_limit_login: str = "10/minute"
    rate_limit_register: str = "5/minute"
    rate_limit_login_email: str = "5/minute"
    rate_limit_postback: str = "600/minute"  # per network and source IP
    # Per source IP whatever network the URL names, counted before the name is looked up: made-up
    # names share this one budget (docs/money.md "Postbacks").
    rate_limit_postback_ip: str = "1200/minute"
    rate_limit_chat: str = "10/10second"
    rate_limit_withdrawal: str = "10/minute"
    # /auth/refresh: per client IP (guessing tokens) and per refresh token (one stolen token
    # replayed in a loop); docs/api.md "Rate limits".
    rate_limit_refresh: str = "30/minute"
    rate_limit_refresh_token: str = "5/minute"
    # POST /offers/{id}/click per user (docs/money.md "Clicks"): its window is a row of stamps,
    # one per click it allows, rewritten by every click, so its amount is kept to what a person
    # clicking could reach (at most MAX_CLICK_LIMIT).
    rate_limit_click: str = "30/minute"

    # Clicks and missing-credit claims (docs/money.md "Attribution and claims"): a click may be
    # claimed from CLAIM_MIN_AGE_SECONDS to CLAIM_MAX_AGE_DAYS after it; a postback may name it
    # for CLICK_RETENTION_DAYS, after which the beat purges it unless a sale or a claim names it.
    claim_min_age_seconds: int = Field(86_400, ge=0)
    claim_max_age_days: int = Field(30, ge=1, le=3650)
    click_retention_days: int = Field(90, ge=1, le=3650)
    # Published events stay in the outbox this long: a socket reconnecting within it resumes
    # from the events it missed; one further behind refetches its state (docs/api.md "Resume").
    outbox_retention_days: int = Field(30, ge=1, le=3650)

    # How long a request waits for a running request with the same Idempotency-Key to finish
    # before it gets 409 (docs/money.md, "Idempotency-Key").
    idempotency_wait_ms: int = Field(5_000, ge=1, le=60_000)

    sale_hold_seconds: int = Field(604_800, ge=0)
    min_withdrawal: Money = Decimal(5)
    auto_pay_limit: Money = Decimal(100)
    # Referrals (docs/money.md "Referrals"): the referrer's share of each approved commission of
    # a referee, for this many days after the referee signed up.
    referral_share: Decimal = Field(Decimal("0.10"), ge=0, le=1, max_digits=6, decimal_places=4)
    referral_window_days: int = Field(365, ge=0, le=36_500)
    # Risk (docs/risk.md): signals recorded where their fact happens, a weighted score, and
    # withdrawals of members at or over RISK_REVIEW_SCORE held for an admin. RISK_ENABLED=false
    # records no signal at all (the benchmarks' baseline; scores and reviews stay as they are).
    risk_enabled: bool = True
    risk_review_score: Decimal = Field(Decimal(50), ge=0, max_digits=10, decimal_places=2)
    # ``kind=weight`` pairs; a kind left out keeps its default (common/services/risk_rules.py).
    risk_weights: str = Field("", pattern=r"^\s*([a-z_]+\s*=\s*[0-9]+(\.[0-9]{1,2})?\s*,?\s*)*$")
    # Behavioural signals stop counting after this many days (docs/risk.md "Decay").
    risk_decay_days: int = Field(30, ge=1, le=3650)
    # shared_signup_ip: this many accounts signed up from one address within 24 hours.
    risk_shared_ip_accounts: int = Field(3, ge=2, le=10_000)
    # fast_conversion: a credit this soon after its click; postback_velocity: more credited
    # conversions than this within an hour.
    risk_fast_conversion_seconds: int = Field(10, ge=0, le=86_400)
    risk_postback_velocity: int = Field(30, ge=1, le=100_000)
    # reversal_rate: at least this share of a member's sales of the last RISK_REVERSAL_WINDOW_DAYS
    # taken back, once they have RISK_REVERSAL_MIN_SALES sales in the window.
    risk_reversal_rate: Decimal = Field(Decimal("0.5"), gt=0, le=1, max_digits=4, decimal_places=3)
    risk_reversal_min_sales: int = Field(5, ge=1, le=100_000)
    risk_reversal_window_days: int = Field(30, ge=1, le=3650)
    # listed_ip: a comma list of CIDRs, or the path of a file of them (one per line, ``#``
    # comments) that ops maintain; read once at start-up.
    risk_blocked_cidrs: str = ""
    # Leaderboards (docs/api.md "Admin"): ``leaderboard:updated`` at most once per this many
    # seconds per period; prizes for the top ranks of a closed period, e.g.
    # ``daily=5,3,1;weekly=25,10,5;monthly=100,50,25`` (empty: no prizes).
    leaderboard_event_interval: int = Field(10, ge=1, le=3600)
    leaderboard_prizes: str = Field("", pattern=r"^((daily|weekly|monthly)=[0-9.,]+;?)*$")
    # The payout provider (docs/money.md). The sandbox behaves like a real one: latency, declines
    # and transient errors at these rates, and magic destinations for deterministic behaviour.
    payout_provider: Literal["sandbox"] = "sandbox"
    payout_sandbox_latency_ms: int = Field(50, ge=0, le=10_000)
    payout_sandbox_decline_rate: float = Field(0.0, ge=0, le=1)
    payout_sandbox_error_rate: float = Field(0.0, ge=0, le=1)
    payout_sandbox_timeout_rate: float = Field(0.0, ge=0, le=1)
    payout_max_attempts: int = Field(6, ge=1, le=20)
    payout_stuck_seconds: int = Field(300, ge=1)

    flower_basic_auth: str | None = None
    # When set, GET /metrics requires ``Authorization: Bearer <token>`` (docs/operations.md).
    metrics_token: str | None = Field(None, repr=False)
    # Each dependency check of GET /health is probed at most once per this many seconds; calls in
    # between (every load balancer's, every probe's) get the last result.
    health_cache_seconds: float = Field(1.0, ge=0, le=60)
    # A page of the public offer catalogue (GET /api/offers) is read at most once per this many
    # seconds per web process, and a committed change shows in every page this long after it at
    # the latest (web/page_cache.py); 0 reads every time. Under a second: no offer is shown
    # stale more than a second after its change commits.
    offers_cache_seconds: float = Field(0.5, ge=0, lt=1)
    # The database and broker figures of /metrics are read at most once per this many seconds.
    metrics_cache_seconds: float = Field(5.0, ge=0, le=300)
    # ``savebucks create-admin``'s password when set (otherwise it prompts).
    savebucks_admin_password: str | None = Field(None, repr=False)
    flower_port: int = Field(5555, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True

    networks: dict[str, NetworkConfig] = Field(default_factory=dict, exclude=True)

    @field_validator("allowed_origins", "trusted_proxies", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return _split(value)

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise ValueError("must be a postgresql:// or postgresql+psycopg:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str) -> str:
        if not value.startswith(_REDIS_SCHEMES):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("celery_broker_url")
    @classmethod
    def _broker(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(_REDIS_SCHEMES + AMQP_SCHEMES):
            raise ValueError("must be a redis://, rediss://, unix://, amqp://, amqps:// or "
                             "pyamqp:// URL")
        return value

    @field_validator("rate_limit_click")
    @classmethod
    def _click_limit(cls, value: str) -> str:
        try:
            item = parse_limit(value)
        except ValueError:
            raise ValueError("must be a limits string such as 30/minute") from None
        if not 1 <= item.amount <= MAX_CLICK_LIMIT:
            raise ValueError(f"must allow between 1 and {MAX_CLICK_LIMIT} clicks per window")
        return value

    @field_validator("database_prepare_threshold", mode="before")
    @classmethod
    def _never_prepare(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("none", "off"):
            return None
        return value

    @field_validator("metrics_token")
    @classmethod
    def _token_or_none(cls, value: str | None) -> str | None:
        if value is not None and value.strip() != value:
            raise ValueError("must not start or end with whitespace")
        return value or None

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_colon_password(cls, value: str | None) -> str | None:
        if value is not None and (":" not in value or value.startswith(":")):
            raise ValueError("must be user:password")
        return value or None

    @model_validator(mode="after")
    def _claims_inside_retention(self) -> Settings:
        if self.claim_max_age_days > self.click_retention_days:
            raise ValueError("CLAIM_MAX_AGE_DAYS: must not exceed CLICK_RETENTION_DAYS (a click "
                             "must still exist while it may be claimed)")
        if self.claim_min_age_seconds >= self.claim_max_age_days * 86_400:
            raise ValueError("CLAIM_MIN_AGE_SECONDS: must be shorter than CLAIM_MAX_AGE_DAYS")
        return self

    @model_validator(mode="after")
    def _risk_rules(self) -> Settings:
        # Both raise a ValueError naming the variable; parsed once here, reused from the cache.
        parse_weights(self.risk_weights)
        blocked_networks(self.risk_blocked_cidrs)
        return self

    @model_validator(mode="after")
    def _production_secrets(self) -> Settings:
        if self.app_env == "development":
            if not self.jwt_secret:
                # A random key per process: tokens die with the process, which suits development.
                object.__setattr__(self, "jwt_secret", secrets.token_urlsafe(48))
            return self
        if len(self.jwt_secret.encode()) < 32:
            raise ValueError("JWT_SECRET: must be at least 32 bytes outside development")
        if not self.flower_basic_auth:
            raise ValueError("FLOWER_BASIC_AUTH: required outside development (user:password)")
        return self

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def broker_is_amqp(self) -> bool:
        return self.broker_url.startswith(AMQP_SCHEMES)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the psycopg 3 driver named, whatever form the operator gave."""
        url = self.database_url
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @property
    def libpq_url(self) -> str:
        """The URL as libpq (raw psycopg) takes it."""
        return "postgresql://" + self.sqlalchemy_url.split("://", 1)[1]

    @property
    def is_production(self) -> bool:
        return self.app_env == "production"

    @property
    def secure_cookies(self) -> bool:
        if self.refresh_cookie_secure is not None:
            return self.refresh_cookie_secure
        return self.app_env != "development"

    @property
    def demo_page_on(self) -> bool:
        return self.demo_page if self.demo_page is not None else self.app_env == "development"


def _read_networks(environ: dict[str, str]) -> dict[str, NetworkConfig]:
    names = {
        key[len(prefix):].lower()
        for key in environ
        for prefix in _PER_NETWORK
        if key.startswith(prefix) and len(key) > len(prefix)
    }
    networks: dict[str, NetworkConfig] = {}
    for name in sorted(names):
        upper = name.upper()
        secret = environ.get(f"POSTBACK_SECRET_{upper}", "")
        scheme = environ.get(f"POSTBACK_SCHEME_{upper}", "generic").strip().lower() or "generic"
        ips = environ.get(f"POSTBACK_ALLOWED_IPS_{upper}", "")
        if name == CLAIM_NETWORK:
            raise ValueError(f"POSTBACK_SECRET_{upper}: the network name {name!r} is reserved for "
                             "the sales of approved missing-credit claims")
        adapter = _adapter(scheme)
        if adapter is None:
            raise ValueError(f"POSTBACK_SCHEME_{upper}: unknown scheme {scheme!r}")
        if not secret:
            raise ValueError(f"POSTBACK_SECRET_{upper}: required for network {name!r}")
        try:
            allowed = tuple(ipaddress.ip_network(p.strip(), strict=False) for p in ips.split(",") if p.strip())
        except ValueError as exc:
            raise ValueError(f"POSTBACK_ALLOWED_IPS_{upper}: {exc}") from None
        if adapter.requires_allowed_ips and not allowed:
            raise ValueError(f"POSTBACK_ALLOWED_IPS_{upper}: required for scheme {scheme!r}, whose "
                             "signature does not cover the user, amount and status")
        networks[name] = NetworkConfig(name=name, secret=secret, scheme=scheme, allowed_ips=allowed)
    return networks


def _adapter(scheme: str) -> Any:
    """The adapter class of a scheme we speak, or None (imported here: the adapters read these
    settings' types)."""
    from common.postbacks import SCHEMES

    return SCHEMES.get(scheme)


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings; exit with one line naming the bad variable."""
    env = dict(os.environ if environ is None else environ)
    try:
        networks = _read_networks(env)
        if environ is None:
            settings = Settings(**overrides)
        else:
            settings = _ExplicitSettings(**{**_lower_keys(env), **overrides})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else ""
        detail = first["msg"].removeprefix("Value error, ")
        prefix = "" if detail.startswith(f"{name}:") or not name else f"{name}: "
        raise ConfigError(f"configuration error: {prefix}{detail}") from None
    except ValueError as exc:
        raise ConfigError(f"configuration error: {exc}") from None
    object.__setattr__(settings, "networks", networks)
    return settings


class _ExplicitSettings(Settings):
    """Settings from a given mapping only (tests, tools), never from the process environment."""

    @classmethod
    def settings_customise_sources(  # type: ignore[override]
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        **_: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def _lower_keys(environ: dict[str, str]) -> dict[str, str]:
    fields = Settings.model_fields
    return {key.lower(): value for key, value in environ.items() if key.lower() in fields}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (workers and the CLI; the web receives its own in create_app)."""
    return load_settings()
