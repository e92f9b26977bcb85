"""django-celery-beat's periodic tasks in the console: enable, disable, run now."""

import pytest
from django.contrib.auth.models import Permission
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from digest.celery import app
from tests.console.conftest import console

pytestmark = pytest.mark.django_db

CHANGELIST = "django_celery_beat/periodictask/"


@pytest.fixture
def task() -> PeriodicTask:
    crontab = CrontabSchedule.objects.create(minute="5", hour="6,12")
    return PeriodicTask.objects.create(
        name="scrape-day", task="papers.tasks.scrape_day", crontab=crontab, args='["2025-11-07"]', enabled=True
    )


def test_it_disables_and_enables(curator_client, run_action, task: PeriodicTask) -> None:
    run_action(curator_client, CHANGELIST, "disable", [task.pk])
    task.refresh_from_db()
    assert not task.enabled

    run_action(curator_client, CHANGELIST, "enable", [task.pk])
    task.refresh_from_db()
    assert task.enabled


def test_it_runs_a_task_now_with_its_arguments(curator_client, run_action, task: PeriodicTask, monkeypatch) -> None:
    sent = []
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)) or type("R", (), {"id": "x"}))

    run_action(curator_client, CHANGELIST, "run_now", [task.pk])

    assert sent == [
        (
            "papers.tasks.scrape_day",
            {"args": ["2025-11-07"], "kwargs": {}, "headers": {"periodic_task_name": "scrape-day"}},
        )
    ]


def test_it_says_so_when_the_broker_is_down(curator_client, run_action, task: PeriodicTask, monkeypatch) -> None:
    def down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(app, "send_task", down)

    response = run_action(curator_client, CHANGELIST, "run_now", [task.pk], follow=True)

    assert "Could not send scrape-day: broker unreachable" in response.content.decode()


def test_it_shows_curators_the_schedule_read_only(curator_client, task: PeriodicTask) -> None:
    page = curator_client.get(console(CHANGELIST)).content.decode()
    detail = curator_client.get(console(f"{CHANGELIST}{task.pk}/change/")).content.decode()

    assert 'value="run_now"' in page and 'value="toggle_tasks"' not in page
    assert 'name="task"' not in detail


def test_it_keeps_actions_from_staff_without_the_role(client, django_user_model, run_action, task) -> None:
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_periodictask"))
    client.force_login(staff)

    run_action(client, CHANGELIST, "disable", [task.pk])

    task.refresh_from_db()
    assert task.enabled
