from collections.abc import Callable

import pytest
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from digest import services


def console(path: str = "") -> str:
    return f"/{settings.ADMIN_URL}{path}"


@pytest.fixture
def curator(db) -> AbstractBaseUser:
    user, _ = services.curator_create(email="cora@example.org")
    return user


@pytest.fixture
def curator_client(curator: AbstractBaseUser) -> Client:
    client = Client()
    client.force_login(curator)
    return client


@pytest.fixture
def superuser(db, django_user_model) -> AbstractBaseUser:
    return django_user_model.objects.create_superuser("root", "root@example.org", "root-password-123")


@pytest.fixture
def superuser_client(superuser: AbstractBaseUser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def run_action() -> Callable:
    """POST an admin action on a changelist, the way the action bar does."""

    def post(client: Client, changelist: str, action: str, ids: list[int], follow: bool = False, **extra: object):
        data = {"action": action, "_selected_action": [str(i) for i in ids], "index": "0", **extra}
        return client.post(console(changelist), data, follow=follow)

    return post
