"""Settings, all from environment variables with embedded defaults.

The defaults run the whole service on one machine with nothing else installed:
SQLite under var/, Celery on a filesystem broker under var/, and every email
written to var/outbox/ as an .eml file. Production switches each part on by
setting a variable (see .env.example and the README's configuration table); no code is edited.

A bad value stops start-up with one line naming the variable and a non-zero
exit (manage.py, wsgi.py and celery.py turn ImproperlyConfigured into that line
through digest/startup.py).
"""

import calendar
import ipaddress
import json
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def envbool(name: str, default: str) -> bool:
    value = env(name, default).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def envint(name: str, default: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = env(name, default)
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def envfloat(name: str, default: str, *, minimum: float = 0.0) -> float:
    raw = env(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):  # float() reads "nan" and "inf", which no limit or timeout means
        raise ImproperlyConfigured(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def envurl(name: str, default: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = env(name, default).rstrip("/")
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.netloc:
        raise ImproperlyConfigured(f"{name} must be an absolute {'/'.join(schemes)} URL, got {value!r}")
    return value


def envhours(name: str, default: str) -> list[int]:
    raw = env(name, default)
    try:
        hours = sorted({int(part) for part in raw.split(",") if part.strip()})
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be comma-separated hours 0-23, got {raw!r}") from None
    if not hours or hours[0] < 0 or hours[-1] > 23:
        raise ImproperlyConfigured(f"{name} must be comma-separated hours 0-23, got {raw!r}")
    return hours


# RFC 6376 3.1: a selector is a sub-domain, dot-separated labels of letters, digits and
# inner hyphens; it goes into the DKIM-Signature header and a DNS name as it is.
DNS_NAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$")


def envdnsname(name: str, default: str = "") -> str:
    """A DNS name (or empty): letters, digits, hyphens and dots, as DKIM's selector and domain are."""
    value = env(name, default)
    if value and (len(value) > 253 or not DNS_NAME.match(value)):
        raise ImproperlyConfigured(f"{name} must be a DNS name of letters, digits, hyphens and dots, got {value!r}")
    return value


def envaddresses(name: str, default: str = "") -> list[tuple[str, str]]:
    """ADMINS-style list: 'Ann <ann@example.org>, bob@example.org'."""
    from email.utils import getaddresses

    raw = env(name, default)
    pairs = [(n, a) for n, a in getaddresses([raw]) if a]
    if raw and (not pairs or any("@" not in a for _, a in pairs)):
        raise ImproperlyConfigured(f"{name} must be a comma-separated list of email addresses, got {raw!r}")
    return pairs


def envnetworks(name: str, default: str = "") -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated IP addresses and CIDR ranges: '10.0.0.0/8, 127.0.0.1'."""
    raw = env(name, default)
    try:
        return [ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be IP addresses or CIDR ranges separated by commas, got {raw!r}"
        ) from None


VAR_DIR = Path(env("VAR_DIR") or BASE_DIR / "var")
DEBUG = envbool("DEBUG", "true")
SECRET_KEY = env("SECRET_KEY")
# Public (it is in the source): what mail that comes back is trusted by is keyed with a
# random per-install key instead while it is in use (digest/mail/verp.py).
DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 - DEBUG only
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = DEV_SECRET_KEY

SITE_URL = envurl("SITE_URL", "http://127.0.0.1:8000")
SITE_NAME = env("SITE_NAME", "Paper Digest")
# Alerts to ADMINS (failed scrapes, held-back or stuck digests) start with this.
EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
_site_host = urlsplit(SITE_URL).hostname or "localhost"
ALLOWED_HOSTS = [h.strip() for h in env("ALLOWED_HOSTS", "*" if DEBUG else _site_host).split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [SITE_URL]

TIME_ZONE = env("TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"TIME_ZONE must be an IANA time zone such as Europe/Berlin, got {TIME_ZONE!r}"
    ) from None
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False

INSTALLED_APPS = [
    # The admin is the curator console: digest.console.ConsoleSite replaces admin.site.
    "digest.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "papers",
    "digest",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "digest.urls"
WSGI_APPLICATION = "digest.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", "60", minimum=0))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL ({exc})") from None
if _db["ENGINE"] not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
    raise ImproperlyConfigured(f"DATABASE_URL must be sqlite:/// or postgres://, got {DATABASE_URL.split(':')[0]}:")


def sqlite_options() -> dict[str, object]:
    """Several processes (web, worker, beat) share the file: writers queue instead of failing.

    A transaction takes the write lock when it begins (IMMEDIATE): two transactions that
    read and then write would otherwise deadlock on the lock upgrade, which SQLite answers
    at once with "database is locked", whatever the busy timeout.
    """
    return {"timeout": 20, "transaction_mode": "IMMEDIATE"}


if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db.setdefault("OPTIONS", {}).update(sqlite_options())
    _db["CONN_MAX_AGE"] = 0
else:
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
if _db["ENGINE"] == "django.db.backends.sqlite3" and _db["NAME"] != ":memory:":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (rate limits, locks shared by all processes) ----------------------
REDIS_URL = env("REDIS_URL")
if REDIS_URL and urlsplit(REDIS_URL).scheme not in ("redis", "rediss"):
    raise ImproperlyConfigured(f"REDIS_URL must be a redis:// or rediss:// URL, got {REDIS_URL!r}")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Celery -----------------------------------------------------------------
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", "1800", minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
# A task whose worker dies is redelivered; the services are idempotent, so that is safe.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "false")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_TASK_TIME_LIMIT + 600}
else:
    # No server needed: web, worker and beat exchange messages through files under var/.
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

# --- the papers feed --------------------------------------------------------
HF_BASE_URL = envurl("HF_BASE_URL", "https://huggingface.co")
HF_TIMEOUT = envfloat("HF_TIMEOUT", "20", minimum=0.1)
HF_MAX_RETRIES = envint("HF_MAX_RETRIES", "4", minimum=0, maximum=10)
# The feed allows 500 requests per 5 minutes without a token; stay well inside it.
HF_REQUEST_BUDGET = envint("HF_REQUEST_BUDGET", "300", minimum=1, maximum=500)
# arXiv's export API: where papers a reader names come from when Hugging Face lacks them.
ARXIV_API_URL = envurl("ARXIV_API_URL", "https://export.arxiv.org/api/query")
# The day's list fills up as papers are submitted: scrape it several times a day
# (hours in TIME_ZONE); the last run of the day is the one digests rely on.
SCRAPE_DAILY_HOURS = envhours("SCRAPE_DAILY_HOURS", "6,12,18,23")
SCRAPE_TRENDING_HOUR = envhours("SCRAPE_TRENDING_HOUR", "7")[0]
# A complete weekday scrape with fewer papers than this share of the recent average is failed.
SCRAPE_MIN_RATIO = envfloat("SCRAPE_MIN_RATIO", "0.25")
# /healthz turns unhealthy when no scrape has succeeded for this long.
HEALTH_MAX_SCRAPE_AGE = envint("HEALTH_MAX_SCRAPE_AGE", str(36 * 3600), minimum=60)
# ...when no worker has stamped its heartbeat (every 30 s while consuming) for this long,
HEALTH_MAX_WORKER_AGE = envint("HEALTH_MAX_WORKER_AGE", "180", minimum=60)
# ...and when beat has neither started nor had the hourly planner run for this long.
HEALTH_MAX_BEAT_AGE = envint("HEALTH_MAX_BEAT_AGE", str(2 * 3600 + 600), minimum=600)

# --- email ------------------------------------------------------------------
ADMINS = envaddresses("ADMINS")
MANAGERS = ADMINS
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"{SITE_NAME} <hello@{_site_host}>")
DIGEST_FROM_EMAIL = env("DIGEST_FROM_EMAIL", f"{SITE_NAME} <digest@{_site_host}>")
SERVER_EMAIL = env("SERVER_EMAIL", DEFAULT_FROM_EMAIL)
EMAIL_HOST = env("EMAIL_HOST")
EMAIL_PORT = envint("EMAIL_PORT", "587" if EMAIL_HOST else "25", minimum=1, maximum=65535)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "true" if EMAIL_HOST else "false")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", "30", minimum=1)
# --- mail that comes back (digest/inbound.py): a bounce / unsubscribe mailbox over IMAP
# imaps://user:password@host[:993]/INBOX (implicit TLS) or imap://... (STARTTLS, required);
# ?processed=Processed names the folder handled messages move to, ?cafile=/path a CA bundle.
INBOUND_IMAP_URL = env("INBOUND_IMAP_URL")
if INBOUND_IMAP_URL and (
    urlsplit(INBOUND_IMAP_URL).scheme not in ("imap", "imaps")
    or not urlsplit(INBOUND_IMAP_URL).hostname
    or not urlsplit(INBOUND_IMAP_URL).username
):
    raise ImproperlyConfigured("INBOUND_IMAP_URL must look like imaps://user:password@host/INBOX")
INBOUND_IMAP_MINUTES = envint("INBOUND_IMAP_MINUTES", "5", minimum=1, maximum=59)
# The provider posts mail sent to UNSUBSCRIBE_MAILTO to /webhooks/<provider>/inbound/.
INBOUND_WEBHOOK = envbool("INBOUND_WEBHOOK", "false")
# The mailto: half of List-Unsubscribe (RFC 2369); some mailbox providers only honour mailto.
# Advertised only when something reads that mailbox: an unsubscribe we promise and ignore
# would break the law's and Gmail's two-day rule.
UNSUBSCRIBE_MAILTO = (
    env("UNSUBSCRIBE_MAILTO", f"unsubscribe@{_site_host}") if INBOUND_IMAP_URL or INBOUND_WEBHOOK else ""
)
# VERP: digests leave with the envelope sender bounces+d<id>-<signature>@..., so a bounce
# names its delivery unforgeably (the mailbox must accept +tags). Empty: DIGEST_FROM_EMAIL.
RETURN_PATH = env("RETURN_PATH")
if RETURN_PATH and ("@" not in RETURN_PATH or "+" in RETURN_PATH or "<" in RETURN_PATH):
    raise ImproperlyConfigured(f"RETURN_PATH must be a bare address without a +tag, got {RETURN_PATH!r}")
OUTBOX_DIR = VAR_DIR / "outbox"
# --- the daily digest (digest/sending/) ----------------------------------------
# CAN-SPAM: every digest names a physical postal address in its footer.
POSTAL_ADDRESS = env("POSTAL_ADDRESS", "1 Example Street, 10115 Berlin, Germany")
# Weekly subscribers get the best of the week on this day, at their send hour.
DIGEST_WEEKLY_DAY = env("DIGEST_WEEKLY_DAY", "monday").lower()
if DIGEST_WEEKLY_DAY not in (day.lower() for day in calendar.day_name):  # as digest.sending.is_weekly_day
    raise ImproperlyConfigured(f"DIGEST_WEEKLY_DAY must be a day of the week, got {DIGEST_WEEKLY_DAY!r}")
# Deliveries per Celery task: one SMTP connection and a fixed number of queries each.
DIGEST_BATCH_SIZE = envint("DIGEST_BATCH_SIZE", "500", minimum=1, maximum=5000)
# Messages per second per sending process; 0 = as fast as the relay accepts.
DIGEST_SEND_RATE = envfloat("DIGEST_SEND_RATE", "0")
# SMTP 4xx and network errors: tries per message within a batch, with exponential
# backoff from DIGEST_RETRY_BACKOFF seconds; then the delivery goes back to pending for
# the next hourly planner run, and fails after DIGEST_MAX_ATTEMPTS such runs.
DIGEST_SMTP_RETRIES = envint("DIGEST_SMTP_RETRIES", "3", minimum=1, maximum=10)
DIGEST_RETRY_BACKOFF = envfloat("DIGEST_RETRY_BACKOFF", "2")
DIGEST_MAX_ATTEMPTS = envint("DIGEST_MAX_ATTEMPTS", "3", minimum=1, maximum=20)
# After this many failed messages in a row a batch stops, sending pauses and curators are alerted.
DIGEST_MAX_CONSECUTIVE_ERRORS = envint("DIGEST_MAX_CONSECUTIVE_ERRORS", "10", minimum=1)
# ...for this many seconds; a relay that cannot be reached at all pauses sending too.
DIGEST_PAUSE_SECONDS = envint("DIGEST_PAUSE_SECONDS", "900", minimum=1)
# The hourly planner's minute: after the scrapes at minute 5, so a morning's digests see them.
DIGEST_PLAN_MINUTE = envint("DIGEST_PLAN_MINUTE", "15", minimum=0, maximum=59)
# Bounces before an address is suppressed: SMTP 5xx during the send, and soft bounces
# reported later (digest/events.py; a later hard bounce or a complaint suppresses at once).
DIGEST_BOUNCE_LIMIT = envint("DIGEST_BOUNCE_LIMIT", "3", minimum=1)
# A delivery still "sending" this long after its claim belongs to a dead worker: it is
# marked stuck and reported, never resent. Longer than any batch may run (the task limit).
DIGEST_STUCK_AFTER = envint("DIGEST_STUCK_AFTER", str(CELERY_TASK_TIME_LIMIT + 300), minimum=5)
# Days a sent digest stays readable from the manage page (at least the 30 days it lists).
DIGEST_ARCHIVE_DAYS = envint("DIGEST_ARCHIVE_DAYS", "90", minimum=30, maximum=3650)

# --- DKIM (digest/mail/dkim.py): every message sent over SMTP is signed when these are set
DKIM_SELECTOR = envdnsname("DKIM_SELECTOR")
DKIM_DOMAIN = envdnsname("DKIM_DOMAIN").lower()
# The PEM text itself (an env file may write its line breaks as \n), or a file holding it.
DKIM_PRIVATE_KEY = env("DKIM_PRIVATE_KEY").replace("\\n", "\n")
DKIM_PRIVATE_KEY_FILE = env("DKIM_PRIVATE_KEY_FILE")
if DKIM_PRIVATE_KEY_FILE:
    if DKIM_PRIVATE_KEY:
        raise ImproperlyConfigured("set DKIM_PRIVATE_KEY or DKIM_PRIVATE_KEY_FILE, not both")
    try:
        DKIM_PRIVATE_KEY = Path(DKIM_PRIVATE_KEY_FILE).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY_FILE cannot be read: {exc}") from None
_dkim_set = [n for n, v in (("DKIM_SELECTOR", DKIM_SELECTOR), ("DKIM_DOMAIN", DKIM_DOMAIN)) if v]
if DKIM_PRIVATE_KEY:
    _dkim_set.append("DKIM_PRIVATE_KEY")
if _dkim_set and len(_dkim_set) < 3:
    raise ImproperlyConfigured(
        "DKIM needs DKIM_SELECTOR, DKIM_DOMAIN and DKIM_PRIVATE_KEY (or _FILE) together;"
        f" only {', '.join(_dkim_set)} set"
    )
if DKIM_PRIVATE_KEY:
    from cryptography.hazmat.primitives.asymmetric import rsa as _rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key as _load_pem

    try:
        _dkim_key = _load_pem(DKIM_PRIVATE_KEY.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"DKIM_PRIVATE_KEY is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(_dkim_key, _rsa.RSAPrivateKey) or _dkim_key.key_size < 1024:
        raise ImproperlyConfigured("DKIM_PRIVATE_KEY must be an RSA key of at least 1024 bits (2048 recommended)")

# --- an email provider's API instead of SMTP (django-anymail) -------------------
# "smtp" (EMAIL_HOST, else the outbox) or an anymail ESP name: amazon_ses, postmark,
# mailgun, sendgrid, brevo, resend, postal, ... Its settings are anymail's own names
# with their ANYMAIL_ prefix, read from the environment as they are (JSON for a dict).
EMAIL_PROVIDER = env("EMAIL_PROVIDER", "smtp").lower()
if EMAIL_PROVIDER != "smtp":
    import importlib.util

    if not EMAIL_PROVIDER.isidentifier() or importlib.util.find_spec(f"anymail.backends.{EMAIL_PROVIDER}") is None:
        raise ImproperlyConfigured(
            f"EMAIL_PROVIDER must be smtp or an anymail provider such as amazon_ses, postmark, mailgun,"
            f" sendgrid, brevo, resend or postal; got {EMAIL_PROVIDER!r}"
        )
    if EMAIL_PROVIDER == "amazon_ses":
        try:
            import boto3  # noqa: F401  (only the amazon-ses extra brings it)
        except ImportError:
            raise ImproperlyConfigured(
                "EMAIL_PROVIDER=amazon_ses needs boto3: install the project with its amazon-ses extra"
                " (pip install '.[amazon-ses]')"
            ) from None
ANYMAIL: dict[str, object] = {}
for _name, _value in sorted(os.environ.items()):
    if _name.startswith("ANYMAIL_") and _value.strip():
        _value = _value.strip()
        if _value[0] in "{[":
            try:
                _value = json.loads(_value)
            except ValueError:
                raise ImproperlyConfigured(f"{_name} looks like JSON but does not parse") from None
        ANYMAIL[_name.removeprefix("ANYMAIL_")] = _value

if EMAIL_PROVIDER != "smtp":
    EMAIL_BACKEND = f"anymail.backends.{EMAIL_PROVIDER}.EmailBackend"
elif EMAIL_HOST:
    EMAIL_BACKEND = "digest.mail.dkim.DkimSmtpBackend"
else:
    # No relay configured: write each message to OUTBOX_DIR as an .eml file.
    EMAIL_BACKEND = "digest.mail.OutboxBackend"

# --- signup abuse limits (counted in the shared cache) -----------------------
# Signup submissions one IP address may make per hour; confirmation and "manage your
# subscription" emails to one address are capped at 3 a day in digest/services.py.
SIGNUP_PER_IP_PER_HOUR = envint("SIGNUP_PER_IP_PER_HOUR", "20", minimum=1)
# Live preview requests one IP address may make per minute (each one is a query).
PREVIEW_PER_IP_PER_MINUTE = envint("PREVIEW_PER_IP_PER_MINUTE", "120", minimum=1)
# Addresses whose domain has no dot or is a special-use name (a@localhost, a@mail,
# a@example.test) are refused at signup; a test install whose mail stays on one machine
# may allow them (digest/addresses.py).
ALLOW_LOCAL_EMAIL_DOMAINS = envbool("ALLOW_LOCAL_EMAIL_DOMAINS", "false")

# --- web --------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
ADMIN_URL = env("ADMIN_URL", "admin/").strip("/") + "/"
# Failed console logins allowed per client IP and per username within the window; more
# are refused without checking the password until the window ends (for a username, only
# from the addresses that failed for it, so nobody can lock a curator out from elsewhere).
LOGIN_FAILURES_PER_IP = envint("LOGIN_FAILURES_PER_IP", "20", minimum=1)
LOGIN_FAILURES_PER_USERNAME = envint("LOGIN_FAILURES_PER_USERNAME", "5", minimum=1)
LOGIN_FAILURE_WINDOW = envint("LOGIN_FAILURE_WINDOW", "900", minimum=60)
LOGIN_URL = f"/{ADMIN_URL}login/"
# The proxies in front of web (addresses or CIDR ranges; none by default). Only a request
# whose peer is one of them has its client read from X-Forwarded-For (digest/http.py), for
# rate limits and consent records; anyone else could write that header themselves.
TRUSTED_PROXIES = envnetworks("TRUSTED_PROXIES")

if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "true")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000", minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "false")
    # Preloading HSTS is a one-way commitment for the whole domain: an explicit opt-in above,
    # so the deploy check's reminder about it is silenced rather than the default flipped.
    SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# Production logs are one JSON object a line; a terminal gets readable text.
LOG_FORMAT = env("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "digest.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO").upper()},
}
