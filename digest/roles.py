"""The console's roles as code: what the "curator" group may do.

Migration 0003 created the group; this keeps it in step on every `migrate` (and after a
test database flush), so a permission added here reaches every curator without a new
data migration. Edits to the group in the admin are therefore reset on migrate: change
this list instead. Superusers may do everything; curators may not erase subscribers
(delete_subscriber) nor change settings, accounts or the schedule's definitions.
"""

from typing import Any

from django.db.models import Q

CURATOR_GROUP = "curator"

CURATOR_PERMISSIONS: dict[str, list[str]] = {
    "papers": [
        "view_paper",
        "change_paper",  # pin and hide; the paper's feed fields are read-only in the console
        "view_pin",
        "add_pin",
        "change_pin",
        "delete_pin",  # un-pinning a pick is part of deciding what goes out
        "view_scraperun",
        "run_scrape",
        "view_papersnapshot",
    ],
    "digest": [
        "view_subscriber",
        "manage_subscriber",  # pause, resume, resend confirmation, suppress, export; not erase
        "view_consentrecord",
        "view_delivery",
        "retry_delivery",
        "preview_digest",
        "view_sentpaper",
        "view_suppression",
        "view_feedback",
        "view_rejectedreport",  # reports that proved nothing: for a person to look at
    ],
    "django_celery_beat": [
        "view_periodictask",
        "run_periodictask",  # enable, disable, run now; the schedule's definition stays with superusers
        "view_crontabschedule",
        "view_intervalschedule",
        "view_clockedschedule",
        "view_solarschedule",
    ],
}


def sync_curator_group(*, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver: the curator group holds exactly CURATOR_PERMISSIONS."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType
    from django_celery_beat.models import PeriodicTask

    # django-celery-beat's models have no Meta to declare it in: a permission of ours.
    task_type = ContentType.objects.db_manager(using).get_for_model(PeriodicTask)
    Permission.objects.using(using).get_or_create(
        content_type=task_type,
        codename="run_periodictask",
        defaults={"name": "Can enable, disable and run periodic tasks"},
    )
    wanted = Q()
    for label, codenames in CURATOR_PERMISSIONS.items():
        wanted |= Q(content_type__app_label=label, codename__in=codenames)
    group, _ = Group.objects.using(using).get_or_create(name=CURATOR_GROUP)
    group.permissions.set(Permission.objects.using(using).filter(wanted))
