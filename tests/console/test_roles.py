"""Who may do what in the console, and how curator accounts are made."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.console.conftest import console
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


def test_it_creates_the_curator_group_with_its_permissions() -> None:
    perms = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="curator").permissions.all()}

    assert {"papers.change_paper", "papers.add_pin", "digest.preview_digest", "digest.manage_subscriber"} <= perms
    assert {"django_celery_beat.run_periodictask", "papers.run_scrape", "digest.retry_delivery"} <= perms
    assert "digest.delete_subscriber" not in perms
    assert "digest.change_subscriber" not in perms
    assert "django_celery_beat.change_periodictask" not in perms
    assert not any(p.startswith("auth.") for p in perms)


def test_it_creates_a_curator_and_prints_how_to_log_in(settings) -> None:
    settings.SITE_URL = "https://digest.example.org"
    out = StringIO()

    call_command("createcurator", "Cora@Example.org", stdout=out)

    user = get_user_model().objects.get()
    text = out.getvalue()
    assert "curator console: https://digest.example.org/admin/" in text
    assert "username: cora@example.org" in text
    password = text.split("password: ")[1].split()[0]
    assert user.check_password(password)
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["curator"]


@pytest.mark.parametrize(
    ("email", "error"),
    [("not-an-address", "not an email address: 'not-an-address'"), ("cora@example.org", "already exists")],
)
def test_it_refuses_a_bad_address_or_an_existing_user(email: str, error: str) -> None:
    call_command("createcurator", "cora@example.org", stdout=StringIO())

    with pytest.raises(CommandError, match=error) as exc:
        call_command("createcurator", email, stdout=StringIO())

    assert "\n" not in str(exc.value)
    assert get_user_model().objects.count() == 1


def test_it_exits_non_zero_from_the_shell() -> None:
    import subprocess
    import sys

    from django.conf import settings

    done = subprocess.run(
        [sys.executable, "manage.py", "createcurator", "nope"],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DATABASE_URL": "sqlite:///:memory:"},
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == "CommandError: not an email address: 'nope'"


def test_it_sends_anonymous_visitors_to_the_login_page(client) -> None:
    response = client.get(console())

    assert response.status_code == 302
    assert response["Location"].startswith(console("login/"))


def test_it_serves_the_console_at_the_admin_url_setting() -> None:
    from django.urls import reverse

    assert reverse("admin:index") == console()


@pytest.mark.parametrize(
    "path",
    [
        "papers/paper/",
        "papers/pin/",
        "papers/scraperun/",
        "digest/subscriber/",
        "digest/delivery/",
        "digest/consentrecord/",
        "django_celery_beat/periodictask/",
    ],
)
def test_it_lets_a_curator_see_the_pipeline(curator_client, path: str) -> None:
    assert curator_client.get(console(path)).status_code == 200


@pytest.mark.parametrize("path", ["auth/user/", "auth/group/", "django_celery_beat/periodictask/add/"])
def test_it_keeps_settings_and_accounts_from_curators(curator_client, superuser_client, path: str) -> None:
    assert curator_client.get(console(path)).status_code == 403
    assert superuser_client.get(console(path)).status_code == 200


def test_it_shows_curators_a_subscriber_read_only(curator_client) -> None:
    subscriber = SubscriberFactory()

    response = curator_client.get(console(f"digest/subscriber/{subscriber.pk}/change/"))

    assert response.status_code == 200
    assert b'name="email"' not in response.content
    assert subscriber.email.encode() in response.content


def test_it_puts_the_group_back_in_step_with_the_code_on_migrate() -> None:
    from django.core.management import call_command

    from digest.roles import CURATOR_PERMISSIONS

    group = Group.objects.get(name="curator")
    group.permissions.clear()

    call_command("migrate", verbosity=0)

    perms = {(p.content_type.app_label, p.codename) for p in group.permissions.select_related("content_type")}
    assert perms == {(label, codename) for label, codenames in CURATOR_PERMISSIONS.items() for codename in codenames}


def test_it_gives_ups_local_curator_the_role_too(settings) -> None:
    """`up` makes its operator with the same service: a superuser, and in the curator group."""
    from digest.management.commands.up import Command

    Command(stdout=StringIO()).ensure_curator(site="http://127.0.0.1:8000")

    user = get_user_model().objects.get(username="curator")
    assert user.is_superuser and user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == ["curator"]
    assert (settings.VAR_DIR / "curator-login.txt").exists()


@pytest.mark.parametrize("path", ["preview/", "preview/html/", "papers/scraperun/scrape/"])
def test_it_sends_anonymous_visitors_of_console_pages_to_the_login(client, path: str) -> None:
    response = client.get(console(path))

    assert response.status_code == 302
    assert response["Location"].startswith(console("login/"))
