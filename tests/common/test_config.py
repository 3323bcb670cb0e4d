from __future__ import annotations

from decimal import Decimal

import pytest

from common.config import ConfigError, load_settings

STRONG = "x" * 40


def test_development_defaults_make_a_random_secret() -> None:
    one, two = load_settings({}), load_settings({})
    assert one.app_env == "development" and one.port == 3003
    assert len(one.jwt_secret) >= 32 and one.jwt_secret != two.jwt_secret
    assert one.min_withdrawal == Decimal(5) and one.auto_pay_limit == Decimal(100)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "abc"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"APP_ENV": "staging"}, "APP_ENV"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL"),
        ({"MIN_WITHDRAWAL": "1.234"}, "MIN_WITHDRAWAL"),
        ({"AUTO_PAY_LIMIT": "-1"}, "AUTO_PAY_LIMIT"),
        ({"ACCESS_TOKEN_TTL": "0"}, "ACCESS_TOKEN_TTL"),
        ({"REFRESH_ROTATION": "maybe"}, "REFRESH_ROTATION"),
        ({"SALE_HOLD_SECONDS": "-5"}, "SALE_HOLD_SECONDS"),
        ({"FLOWER_BASIC_AUTH": "nopassword"}, "FLOWER_BASIC_AUTH"),
        ({"RATE_LIMIT_CLICK": "often"}, "RATE_LIMIT_CLICK"),
        ({"RATE_LIMIT_CLICK": "0/minute"}, "RATE_LIMIT_CLICK"),
        ({"RATE_LIMIT_CLICK": "3000000000/minute"}, "RATE_LIMIT_CLICK"),
        ({"APP_ENV": "production", "JWT_SECRET": "short"}, "JWT_SECRET"),
        ({"APP_ENV": "test", "JWT_SECRET": ""}, "JWT_SECRET"),
        ({"APP_ENV": "production", "JWT_SECRET": STRONG}, "FLOWER_BASIC_AUTH"),
        ({"POSTBACK_SCHEME_ACME": "generic"}, "POSTBACK_SECRET_ACME"),
        ({"POSTBACK_SECRET_ACME": "s", "POSTBACK_ALLOWED_IPS_ACME": "nope"}, "POSTBACK_ALLOWED_IPS_ACME"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith("configuration error: ") and f"{variable}:" in message
    assert "\n" not in message


def test_production_accepts_strong_settings_and_reads_lists() -> None:
    settings = load_settings(
        {
            "APP_ENV": "production",
            "JWT_SECRET": STRONG,
            "FLOWER_BASIC_AUTH": "ops:pw",
            "ALLOWED_ORIGINS": "https://a.example, https://b.example",
            "POSTBACK_SECRET_CPX": "k",
            "POSTBACK_SCHEME_CPX": "cpx",
            "POSTBACK_ALLOWED_IPS_CPX": "10.0.0.0/8,1.2.3.4",
        }
    )
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    network = settings.networks["cpx"]
    assert network.scheme == "cpx" and network.secret == "k" and len(network.allowed_ips) == 2


@pytest.mark.parametrize(("env", "named"), [
    ({"POSTBACK_SECRET_CPX": "k", "POSTBACK_SCHEME_CPX": "cpx"}, "POSTBACK_ALLOWED_IPS_CPX"),
    ({"POSTBACK_SECRET_AG": "k", "POSTBACK_SCHEME_AG": "adgate"}, "POSTBACK_SCHEME_AG"),
])
def test_a_network_we_cannot_verify_is_refused_at_start(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_settings(env)
    assert named in str(exc.value)


def test_urls_are_normalised_for_each_driver() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://u@h:1/d"})
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@h:1/d"
    assert settings.libpq_url == "postgresql://u@h:1/d"
    assert settings.broker_url == settings.redis_url


@pytest.mark.parametrize("url", ["amqp://guest:guest@127.0.0.1:5672//", "pyamqp://u:p@h:5672/vh",
                                 "amqps://u:p@h:5671/vh", "redis://h:6379/1"])
def test_the_broker_may_be_rabbitmq_or_redis(url: str) -> None:
    assert load_settings({"CELERY_BROKER_URL": url}).broker_url == url


@pytest.mark.parametrize("url", ["http://h/", "sqs://", "amqp:/"])
def test_a_broker_we_do_not_run_on_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="CELERY_BROKER_URL"):
        load_settings({"CELERY_BROKER_URL": url})


def test_redis_url_stays_redis_only() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings({"REDIS_URL": "amqp://guest:guest@127.0.0.1:5672//"})


@pytest.mark.parametrize(("value", "threshold"), [
    (None, 1), ("0", 0), ("5", 5), ("none", None), ("off", None), ("NONE", None),
])
def test_prepared_statements_can_be_turned_off_for_pgbouncer(value: str | None, threshold: int | None) -> None:
    env = {} if value is None else {"DATABASE_PREPARE_THRESHOLD": value}
    assert load_settings(env).database_prepare_threshold == threshold


def test_a_bad_prepare_threshold_is_refused() -> None:
    with pytest.raises(ConfigError, match="DATABASE_PREPARE_THRESHOLD"):
        load_settings({"DATABASE_PREPARE_THRESHOLD": "sometimes"})
