"""Settings come from the environment; a bad value stops start-up with one line naming it."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = (ROOT / "digest" / "settings.py").read_text()
# Every variable settings.py reads, through env(), envbool(), envint(), ...
READ_VARS = set(re.findall(r'env\w*\(\s*"([A-Z][A-Z0-9_]+)"', SETTINGS))


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Django's own variables too: the e2e tests set DJANGO_ALLOW_ASYNC_UNSAFE for their browser thread.
    clean = {k: v for k, v in os.environ.items() if k not in READ_VARS and not k.startswith("DJANGO_")}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**clean, "DIGEST_NO_BOOTSTRAP": "1", **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be true or false, got 'maybe'"),
        ("EMAIL_PORT", "smtp", "EMAIL_PORT must be a whole number, got 'smtp'"),
        ("DATABASE_URL", "mysql://u@h/db", "DATABASE_URL must be sqlite:/// or postgres://"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL must be a redis:// or rediss:// URL"),
        ("SITE_URL", "example.org", "SITE_URL must be an absolute http/https URL"),
        ("TIME_ZONE", "Mars/Olympus", "TIME_ZONE must be an IANA time zone"),
        ("SCRAPE_DAILY_HOURS", "6,25", "SCRAPE_DAILY_HOURS must be comma-separated hours 0-23"),
        ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.local", "TRUSTED_PROXIES must be IP addresses or CIDR ranges"),
        ("HF_TIMEOUT", "nan", "HF_TIMEOUT must be a finite number, got 'nan'"),
        ("DIGEST_SEND_RATE", "inf", "DIGEST_SEND_RATE must be a finite number, got 'inf'"),
        ("DKIM_SELECTOR", 'bad"sel', "DKIM_SELECTOR must be a DNS name of letters, digits, hyphens and dots"),
        ("DKIM_DOMAIN", "example.org; x=y", "DKIM_DOMAIN must be a DNS name of letters, digits, hyphens and dots"),
        ("ALLOW_LOCAL_EMAIL_DOMAINS", "sometimes", "ALLOW_LOCAL_EMAIL_DOMAINS must be true or false"),
    ],
)
def test_it_refuses_a_bad_value_with_one_line_naming_the_variable(variable: str, value: str, message: str) -> None:
    result = manage("check", **{variable: value})

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_it_requires_a_secret_key_when_debug_is_off() -> None:
    result = manage("check", DEBUG="false")

    assert result.returncode != 0
    assert result.stderr.strip() == "configuration error: SECRET_KEY must be set when DEBUG is off"


def test_it_starts_on_the_embedded_defaults(tmp_path: Path) -> None:
    result = manage("check", VAR_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_env_example_documents_every_variable_settings_reads() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert READ_VARS - documented == set()
    assert documented - READ_VARS == set()


def test_docker_compose_agrees_with_settings_and_readme() -> None:
    """No Docker engine runs here, so check the compose file against what the code reads."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "mailpit"} <= set(services)

    app = compose["x-app"]
    for name in ("web", "worker", "beat"):
        # YAML merge: each app service carries the shared definition's environment.
        assert services[name]["environment"] == app["environment"]
        assert services[name]["image"] == app["image"]
    assert set(app["environment"]) <= READ_VARS
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "EMAIL_HOST", "SITE_URL", "HF_BASE_URL"} <= set(
        app["environment"]
    )
    assert services["web"]["command"][:2] == ["gunicorn", "digest.wsgi"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "digest", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "digest", "beat"]
    assert "--appendonly" in services["redis"]["command"]
    assert "noeviction" in services["redis"]["command"]
    assert "healthcheck" in services["postgres"]

    readme = (ROOT / "README.md").read_text()
    for variable in ("DATABASE_URL", "REDIS_URL", "EMAIL_HOST", "SITE_URL", "HF_BASE_URL", "SECRET_KEY"):
        assert f"`{variable}`" in readme


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${NAME:-default}` substitution, with `variables` standing in for the shell and .env."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: variables.get(m[1]) or m[2], value)


def test_it_publishes_web_on_the_loopback_interface_unless_told_otherwise() -> None:
    """Port 8000 is plain HTTP meant for the TLS proxy only: published on 127.0.0.1 by default."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, port in (("web", "8000"), ("mailpit", "8025")):
        (published,) = services[name]["ports"]
        assert interpolate(published, {}) == f"127.0.0.1:{port}:{port}", name

    (web,) = services["web"]["ports"]
    assert interpolate(web, {"WEB_BIND_ADDRESS": "192.0.2.10"}) == "192.0.2.10:8000:8000"
    env_example = (ROOT / ".env.example").read_text()
    assert "WEB_BIND_ADDRESS" in env_example
    assert "`WEB_BIND_ADDRESS`" in (ROOT / "README.md").read_text()


def test_readme_quick_start_is_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["python3 manage.py up", "python3 manage.py test"]


def test_the_deploy_check_is_clean_with_the_documented_production_variables(tmp_path: Path) -> None:
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY="k" * 20 + "-production-secret-with-enough-entropy-0123456789",
        SITE_URL="https://digest.example.org",
        DATABASE_URL="postgres://digest:digest@127.0.0.1:5432/digest",
        VAR_DIR=str(tmp_path),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_logs_are_one_json_object_a_line(tmp_path: Path) -> None:
    code = (
        "import django, logging, json; django.setup();"
        "logging.getLogger('papers.services').warning('feed slow: %s', 'api')"
    )
    clean = {k: v for k, v in os.environ.items() if k not in READ_VARS}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "digest.settings",
            "DEBUG": "false",
            "SECRET_KEY": "x" * 50,
            "VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )

    entry = json.loads(result.stderr.strip().splitlines()[-1])
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "papers.services"
    assert entry["message"] == "feed slow: api"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DKIM_SELECTOR": "pd"}, "DKIM needs DKIM_SELECTOR, DKIM_DOMAIN and DKIM_PRIVATE_KEY (or _FILE) together"),
        (
            {"DKIM_SELECTOR": "pd", "DKIM_DOMAIN": "example.org", "DKIM_PRIVATE_KEY": "not a key"},
            "DKIM_PRIVATE_KEY is not an unencrypted PEM private key",
        ),
        (
            {"DKIM_SELECTOR": "pd", "DKIM_DOMAIN": "example.org", "DKIM_PRIVATE_KEY_FILE": "/nonexistent/dkim.pem"},
            "DKIM_PRIVATE_KEY_FILE cannot be read",
        ),
        ({"EMAIL_PROVIDER": "carrier_pigeon"}, "EMAIL_PROVIDER must be smtp or an anymail provider"),
        (
            {"EMAIL_PROVIDER": "postmark", "ANYMAIL_POSTMARK_API_URL": "{oops"},
            "ANYMAIL_POSTMARK_API_URL looks like JSON",
        ),
    ],
)
def test_it_refuses_bad_deliverability_settings_with_one_line(env: dict[str, str], message: str) -> None:
    result = manage("check", **env)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_it_names_the_extra_amazon_ses_needs_when_boto3_is_missing(tmp_path: Path) -> None:
    # An install without the amazon-ses extra: boto3 cannot be imported.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['boto3'] = None\n")

    result = manage("check", EMAIL_PROVIDER="amazon_ses", PYTHONPATH=str(tmp_path))

    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "EMAIL_PROVIDER=amazon_ses needs boto3" in line and "amazon-ses extra" in line
    assert manage("check", EMAIL_PROVIDER="postmark", PYTHONPATH=str(tmp_path)).returncode == 0


def test_the_mailto_unsubscribe_is_not_advertised_without_an_inbound_source() -> None:
    show = "from django.conf import settings; print(repr(settings.UNSUBSCRIBE_MAILTO))"

    def mailto(**env: str) -> str:
        return manage("shell", "--no-imports", "-c", show, **env).stdout.strip()

    assert mailto(UNSUBSCRIBE_MAILTO="u@example.org") == "''"
    assert (
        mailto(UNSUBSCRIBE_MAILTO="u@example.org", INBOUND_IMAP_URL="imaps://u:p@127.0.0.1/INBOX") == "'u@example.org'"
    )
    assert mailto(UNSUBSCRIBE_MAILTO="u@example.org", INBOUND_WEBHOOK="true") == "'u@example.org'"


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last pattern that matches
    the path or one of its parent directories decides ("!" re-includes); "*" stays within
    one path segment, "**" spans any number of them."""

    def regex(pattern: str) -> re.Pattern[str]:
        parts = re.split(r"(\*\*/?|\*|\?)", pattern.strip("/"))
        wild = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
        return re.compile("".join(wild.get(p, re.escape(p)) for p in parts) + r"\Z")

    segments = path.split("/")
    candidates = ["/".join(segments[: n + 1]) for n in range(len(segments))]
    ignored = False
    for line in patterns:
        negate, pattern = line.startswith("!"), line.removeprefix("!")
        if any(regex(pattern).match(candidate) for candidate in candidates):
            ignored = not negate
    return ignored


def test_the_image_leaves_out_secrets_the_virtualenv_and_caches() -> None:
    """Without a .dockerignore, `COPY . .` put .env, var/ (the database and the curator
    login) and .venv into the image. No Docker engine runs here, so the file is read as
    Docker reads it."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    for path in (
        ".env",
        ".env.production",
        "var/db.sqlite3",
        "var/curator-login.txt",
        "var/outbox/1.eml",
        ".venv/bin/python",
        ".git/HEAD",
        "digest/__pycache__/settings.cpython-311.pyc",
        "papers/feed.pyc",
        ".pytest_cache/v/cache/nodeids",
        ".ruff_cache/0.6.0/x",
        ".hypothesis/examples/x",
        "paper_digest.egg-info/PKG-INFO",
        "staticfiles/digest/site.css",
    ):
        assert dockerignored(path, patterns), path
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = [src for line in dockerfile.splitlines() if line.startswith("COPY ") for src in line.split()[1:-1]]
    assert "." in copied  # the whole context goes in once the dependencies are installed
    for path in (
        *(src for src in copied if src != "."),
        "manage.py",
        "digest/settings.py",
        "templates/base.html",
        ".env.example",
        "pyproject.toml",
    ):
        assert (ROOT / path).exists(), path
        assert not dockerignored(path, patterns), path
