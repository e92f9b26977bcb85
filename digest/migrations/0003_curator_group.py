"""The "curator" role: steer and inspect the pipeline, never erase people or change settings.

The permission list is frozen here (a migration must not follow later code);
digest/roles.py keeps the group in step on every migrate from then on.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CURATOR_PERMISSIONS = {
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


def ensure_permissions(apps, schema_editor) -> None:
    # On a fresh database, permissions are only created after all migrations ran
    # (post_migrate); create them now so the group can hold them.
    for label in CURATOR_PERMISSIONS:
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None


def create_group(apps, schema_editor) -> None:
    ensure_permissions(apps, schema_editor)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    # django-celery-beat's models have no Meta to declare it in: a custom permission of ours.
    task_type = ContentType.objects.get(app_label="django_celery_beat", model="periodictask")
    Permission.objects.get_or_create(
        content_type=task_type,
        codename="run_periodictask",
        defaults={"name": "Can enable, disable and run periodic tasks"},
    )
    group, _ = Group.objects.get_or_create(name="curator")
    for label, codenames in CURATOR_PERMISSIONS.items():
        found = list(Permission.objects.filter(content_type__app_label=label, codename__in=codenames))
        missing = set(codenames) - {p.codename for p in found}
        if missing:
            raise RuntimeError(f"curator group: permissions missing in {label}: {sorted(missing)}")
        group.permissions.add(*found)


def remove_group(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name="curator").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("digest", "0002_console_permissions"),
        ("papers", "0002_run_scrape_permission"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
