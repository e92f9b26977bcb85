import socket
from io import StringIO

import pytest
from django.contrib.auth import get_user_model

from digest.management.commands.up import Command
from papers.models import Paper, ScrapeRun

pytestmark = pytest.mark.django_db


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_it_falls_back_to_the_bundled_sample_when_offline(settings) -> None:
    """Offline, the start-up scrape says so and loads real sample data instead of leaving the site empty."""
    settings.HF_BASE_URL = closed_port_url()
    out = StringIO()
    command = Command(stdout=out)

    command.first_scrape()

    text = out.getvalue()
    assert "not reachable" in text
    assert "bundled sample" in text
    assert ScrapeRun.objects.filter(status=ScrapeRun.Status.FAILED, source="daily").count() == 1
    assert ScrapeRun.objects.filter(status=ScrapeRun.Status.OK, source="file").count() == 1
    assert Paper.objects.count() == 15


def test_it_creates_one_curator_and_prints_how_to_log_in(settings) -> None:
    out = StringIO()
    command = Command(stdout=out)

    command.ensure_curator(site="http://127.0.0.1:8000")
    command.ensure_curator(site="http://127.0.0.1:8000")

    assert get_user_model().objects.filter(is_superuser=True).count() == 1
    login = (settings.VAR_DIR / "curator-login.txt").read_text()
    password = login.split("password: ")[1].strip()
    assert get_user_model().objects.get(username="curator").check_password(password)
    assert out.getvalue().count("http://127.0.0.1:8000/admin/") == 2
    assert password in out.getvalue()
