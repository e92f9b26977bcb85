from collections.abc import Callable, Iterator

import pytest
from django.test import Client

from tests.factories import signup_data


@pytest.fixture
def signup(client: Client, django_capture_on_commit_callbacks: Callable) -> Iterator[Callable]:
    """POST the signup form like a browser and run what is enqueued on commit."""

    def post(**overrides: str):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post("/", signup_data(**overrides), HTTP_USER_AGENT="Mozilla/5.0 (test)")

    yield post
