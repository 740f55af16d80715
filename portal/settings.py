"""Crossport settings: everything comes from the environment (django-environ).

Embedded default (no variables set): SQLite and data under ./var, an in-memory channel layer and
cache, and the build worker inside the server process. Scale-out: DATABASE_URL (PostgreSQL) and
REDIS_URL (channels-redis and the cache) with separate `manage.py buildworker` processes.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from portal.private import UMASK, create_once, private_dir

# Every file and folder a portal process creates is its user's alone (the database and its
# -wal/-shm, workspaces, docker configs...): set here because every entry point (manage.py,
# ASGI servers, workers, tests) loads the settings first. Programs whose output becomes image
# content (git checkouts) run with the usual umask instead (builds/gitsource.py).
os.umask(UMASK)

BASE_DIR = Path(__file__).resolve().parent.parent


class _SecretFiles(environ.FileAwareMapping):
    """NAME_FILE, when set, names a file that holds NAME's value (the docker and compose secrets
    convention: a value in a file under /run/secrets stays out of `docker inspect`). A file's
    trailing line break is not part of the value, as `$(cat file)` would drop it; a file that
    cannot be read, is not text or is empty stops start-up, naming it."""

    def __getitem__(self, key: str) -> str:
        if not (path := self.env.get(key + "_FILE")):
            return str(super().__getitem__(key))
        try:
            value = str(super().__getitem__(key)).rstrip("\r\n")
        except OSError as exc:
            raise ImproperlyConfigured(f"{key}_FILE: cannot read {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ImproperlyConfigured(f"{key}_FILE: {path} is not UTF-8 text") from exc
        if not value:
            raise ImproperlyConfigured(f"{key}_FILE: {path} is empty")
        return value


class _Env(environ.Env):
    ENVIRON = _SecretFiles()

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        """A value from a file is taken as it is: django-environ's `$OTHER` proxying would turn
        a password that starts with `$` into another variable's value (or the default)."""
        if var + "_FILE" not in os.environ:
            return super().get_value(var, cast, default, parse_default)
        return self.parse_value(self.ENVIRON[var], cast)


env = _Env()

DATA_DIR = private_dir(Path(env.str("PORTAL_DATA_DIR", default=str(BASE_DIR / "var"))).resolve())


def _secret_key() -> str:
    """PORTAL_SECRET_KEY, else a random key kept in the data dir so sessions survive restarts."""
    if value := env.str("PORTAL_SECRET_KEY", default=""):
        return value
    return create_once(DATA_DIR / "secret.key", secrets.token_urlsafe(50)).strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("PORTAL_DEBUG", default=False)
ALLOWED_HOSTS = env.list("PORTAL_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("PORTAL_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "portal.apps.AdminConfig",  # django.contrib.admin, its login behind the lockout
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "channels",
    "portal",
    "builds",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"

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
                "django.template.context_processors.csp",  # {{ csp_nonce }}, for the admin
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'portal.sqlite3'}"),
}
# The password apart from the URL, so it can come from a file (DATABASE_PASSWORD_FILE) that the
# database's own container reads too (POSTGRES_PASSWORD_FILE); it wins over one in the URL.
if database_password := env.str("DATABASE_PASSWORD", default=""):
    DATABASES["default"]["PASSWORD"] = database_password
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded worker thread writes while requests read: WAL and a busy timeout keep
    # SQLite from answering "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            # Take the write lock at BEGIN, so read-then-write transactions wait for it
            # instead of failing with "database is locked".
            "transaction_mode": "IMMEDIATE",
        }
    )
    # Tests use a file too: an in-memory database shares one cache between threads and
    # answers "table is locked" instead of waiting, unlike the real thing.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Requests and websocket consumers do their database work on short-lived threads, each
    # opening and closing its connection: without a pool that is a new PostgreSQL connection
    # (and backend process) per request, most of a websocket connect's time under a crowd.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": env.int("PORTAL_DB_POOL_SIZE", default=10),
        "timeout": 20,
    }

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # A receive waits in a 5 s server-side BZPOPMIN; redis-py 8's default 5 s
                # socket_timeout would cut that wait short and close idle websockets with 1011.
                "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
                "prefix": env.str("PORTAL_CHANNEL_PREFIX", default="crossport"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The cache holds what every portal process must agree on (login and token failure counts,
# portal/throttle.py): Redis when there are several processes, memory in the embedded one.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache"
        if REDIS_URL
        else "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("PORTAL_CACHE_PREFIX", default="crossport"),
    }
}

# The build worker runs inside `manage.py serve` unless separate workers carry the load.
PORTAL_EMBEDDED_WORKER = env.bool("PORTAL_EMBEDDED_WORKER", default=not REDIS_URL)

# --- Browser policy ---------------------------------------------------------------------------
# Pages load only the portal's own scripts, styles and images (htmx and its ws extension come from
# django_htmx's static files) and connect only to the portal (fetch, and the live log's websocket:
# 'self' covers ws/wss of the same host and port). Our templates have nothing inline; the Django
# admin marks its few inline <script>/<style> blocks with the request's nonce, which the
# middleware names in the header only when a page used it.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
# Django's defaults, stated because the policy relies on them.
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"


def _proxy_ssl_header() -> tuple[str, str] | None:
    """PORTAL_PROXY_SSL_HEADER, e.g. HTTP_X_FORWARDED_PROTO=https: the header (in META form)
    and value by which the TLS proxy in front says a request came in over HTTPS."""
    value = env.str("PORTAL_PROXY_SSL_HEADER", default="")
    if not value:
        return None
    name, _, secure = value.partition("=")
    if not (name.startswith("HTTP_") and len(name) > 5 and secure):
        raise ImproperlyConfigured(
            f"PORTAL_PROXY_SSL_HEADER={value!r}: expected HTTP_<HEADER>=<value>, "
            "e.g. HTTP_X_FORWARDED_PROTO=https"
        )
    return name, secure


# Only a proxy that sets this header itself (and strips it from clients) may be believed; then
# request.is_secure() and the websocket origin check (portal/wsauth.py) see HTTPS.
SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()

# Behind TLS (PORTAL_HTTPS=true): HTTPS only, remembered by browsers (HSTS), cookies never sent
# over plain HTTP. Behind a proxy that terminates TLS, set PORTAL_PROXY_SSL_HEADER too, or every
# request looks like plain HTTP and the redirect never ends.
PORTAL_HTTPS = env.bool("PORTAL_HTTPS", default=False)
SECURE_SSL_REDIRECT = PORTAL_HTTPS
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = PORTAL_HTTPS
SECURE_HSTS_SECONDS = env.int("PORTAL_HSTS_SECONDS", default=365 * 24 * 3600) if PORTAL_HTTPS else 0
# includeSubDomains covers names below the portal's own (not its siblings): on by default.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("PORTAL_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading asks browser vendors to hard-code the name, hard to undo: only when asked for, and
# then the deployment check's reminder about it (security.W021) is pointless.
SECURE_HSTS_PRELOAD = env.bool("PORTAL_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Guessing (portal/throttle.py): past these many failures in the window, every attempt from that
# account or address answers 429 until the window (opened by the first failure) has passed.
PORTAL_LOGIN_FAILURES_PER_USER = env.int("PORTAL_LOGIN_FAILURES_PER_USER", default=10)
PORTAL_LOGIN_FAILURES_PER_ADDRESS = env.int("PORTAL_LOGIN_FAILURES_PER_ADDRESS", default=30)
PORTAL_LOGIN_WINDOW_SECONDS = env.int("PORTAL_LOGIN_WINDOW_SECONDS", default=900)
PORTAL_TOKEN_FAILURES_PER_ADDRESS = env.int("PORTAL_TOKEN_FAILURES_PER_ADDRESS", default=20)
PORTAL_TOKEN_WINDOW_SECONDS = env.int("PORTAL_TOKEN_WINDOW_SECONDS", default=60)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = private_dir(DATA_DIR / "static")  # served by WhiteNoise, in this process
# Nothing is uploaded today; if something ever is, it stays private like the rest.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed names (cached for a year by browsers) and gzip/brotli copies, made by
    # collectstatic, which `manage.py serve` runs at start (builds/migrating.py).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Only the collected files: their hashed names are what lets whitenoise cache them forever.
WHITENOISE_USE_FINDERS = False

# --- Builds ---------------------------------------------------------------------------------
# Official base image names are rewritten through this prefix, e.g. localhost:5000/library.
PORTAL_BASE_IMAGE_MIRROR = env.str("PORTAL_BASE_IMAGE_MIRROR", default="")
# `--network` for build steps; "host" where the engine runs without a bridge network.
PORTAL_BUILD_NETWORK = env.str("PORTAL_BUILD_NETWORK", default="")
PORTAL_DOCKER_CLI = env.str("PORTAL_DOCKER_CLI", default="docker")
PORTAL_GIT_CLI = env.str("PORTAL_GIT_CLI", default="git")
# Hosts users name (git URLs, registries) must resolve to public addresses, unless listed here:
# host, host:port or CIDR, comma-separated (portal/outbound.py).
PORTAL_OUTBOUND_ALLOW = env.list("PORTAL_OUTBOUND_ALLOW", default=[])
# file:// git URLs read this machine's disk: allowed only below these folders (none by default).
PORTAL_GIT_FILE_ROOTS = env.list("PORTAL_GIT_FILE_ROOTS", default=[])
# The operator's known_hosts for ssh:// git servers; unset, each team pins the key its first
# fetch from a host:port saw (builds/gitauth.py).
PORTAL_GIT_KNOWN_HOSTS = env.str("PORTAL_GIT_KNOWN_HOSTS", default="")
PORTAL_WORKSPACE_DIR = Path(env.str("PORTAL_WORKSPACE_DIR", default=str(DATA_DIR / "workspaces")))
# A running build renews its lease every few seconds; a lease older than this is a lost worker.
PORTAL_BUILD_LEASE_SECONDS = env.int("PORTAL_BUILD_LEASE_SECONDS", default=60)
PORTAL_BUILD_TIMEOUT_SECONDS = env.int("PORTAL_BUILD_TIMEOUT_SECONDS", default=3600)
# A stopping `buildworker` (SIGTERM) lets its running build finish this long, then hands it back
# to the queue. Keep it below the orchestrator's grace period (docker stop: 10 s unless
# --time; Kubernetes: terminationGracePeriodSeconds, 30 s).
PORTAL_WORKER_DRAIN_SECONDS = env.int("PORTAL_WORKER_DRAIN_SECONDS", default=25)
# What one build's log may store (bytes of build output; 0: no cap). Past it one line says the
# log was truncated and the build goes on; Crossport's own lines are always kept.
PORTAL_BUILD_LOG_MAX_BYTES = env.int("PORTAL_BUILD_LOG_MAX_BYTES", default=64 * 1024 * 1024)
# Days a finished build's log is kept (0: forever); `manage.py prune_logs` removes older ones.
# Builds and the ledger are never pruned.
PORTAL_LOG_RETENTION_DAYS = env.int("PORTAL_LOG_RETENTION_DAYS", default=0)
# Builds one team may run at once (0: no limit); the rest wait, and other teams go first.
PORTAL_TEAM_MAX_BUILDS = env.int("PORTAL_TEAM_MAX_BUILDS", default=0)
# After cancel, buildx gets SIGINT and this long to stop before SIGKILL.
PORTAL_CANCEL_GRACE_SECONDS = env.int("PORTAL_CANCEL_GRACE_SECONDS", default=10)
# How often builder nodes are health-checked (engine, BuildKit, platforms, reachability).
PORTAL_NODE_CHECK_SECONDS = env.int("PORTAL_NODE_CHECK_SECONDS", default=60)
# Key for secrets stored in the database (node TLS keys); empty: derived from SECRET_KEY.
PORTAL_ENCRYPTION_KEY = env.str("PORTAL_ENCRYPTION_KEY", default="")
# The emulator installer (run privileged on a node with --install <platforms>).
PORTAL_BINFMT_IMAGE = env.str("PORTAL_BINFMT_IMAGE", default="tonistiigi/binfmt")
# The BuildKit image buildx's docker-container driver runs for multi-node builders (through the
# mirror's registry when a mirror is set; scripts/teststack/seeds/buildkit.sh makes one offline).
PORTAL_BUILDKIT_IMAGE = env.str("PORTAL_BUILDKIT_IMAGE", default="moby/buildkit:buildx-stable-1")
# Registries builders reach over plain HTTP (host:port, comma-separated). Loopback registries the
# portal may contact (PORTAL_OUTBOUND_ALLOW, the base-image mirror) count without being listed.
PORTAL_BUILDKIT_HTTP_REGISTRIES = env.list("PORTAL_BUILDKIT_HTTP_REGISTRIES", default=[])
# Registries signed by a private CA: host=/path/to/ca.pem, comma-separated.
PORTAL_BUILDKIT_REGISTRY_CA = env.dict("PORTAL_BUILDKIT_REGISTRY_CA", default={})
# The scanner image BuildKit runs for an SBOM attestation (e.g. docker/buildkit-syft-scanner,
# through the base-image mirror's registry); empty: no SBOM.
PORTAL_SBOM_GENERATOR = env.str("PORTAL_SBOM_GENERATOR", default="")

# --- Operations -----------------------------------------------------------------------------
# /metrics (builds/metrics.py) answers these client addresses and networks, and anyone with
# `Authorization: Bearer <PORTAL_METRICS_TOKEN>`; everyone else gets a 404.
try:
    PORTAL_METRICS_ALLOW = [
        ipaddress.ip_network(entry, strict=False)
        for entry in env.list("PORTAL_METRICS_ALLOW", default=["127.0.0.0/8", "::1"])
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"PORTAL_METRICS_ALLOW: {exc}") from exc
PORTAL_METRICS_TOKEN = env.str("PORTAL_METRICS_TOKEN", default="")

# PORTAL_LOG_FORMAT=json: one JSON object a line (python-json-logger), for log shippers; every
# line logged while a worker runs a build carries build_id, project and team (portal/logcontext.py).
LOG_FORMAT = env.str("PORTAL_LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"PORTAL_LOG_FORMAT: plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"build": {"()": "portal.logcontext.BuildFields"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"
            " %(build_id)s %(project)s %(team)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["build"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("PORTAL_LOG_LEVEL", default="INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
