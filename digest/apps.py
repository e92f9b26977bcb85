from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Digest"

    def ready(self) -> None:
        from django.core import checks
        from django.db.models.signals import post_migrate

        # Register the tasks in every process, not only in workers (Celery's autodiscovery
        # runs there): services enqueue them by name (digest/jobs.py).
        import digest.tasks  # noqa: F401
        from digest.roles import sync_curator_group

        # Runs after every app's permissions exist: "digest" is last in INSTALLED_APPS.
        post_migrate.connect(sync_curator_group, sender=self, dispatch_uid="digest.sync_curator_group")
        checks.register(webhooks_check)


def webhooks_check(app_configs: object = None, **kwargs: object) -> list:
    """`check` (and `check --deploy`): one line when the provider's webhooks wait for their secret."""
    from django.core.checks import Warning as CheckWarning

    from digest.webhooks import missing_credential

    missing = missing_credential()
    return [CheckWarning(missing, id="digest.W001")] if missing else []


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the curator console as the default site, so every
    admin.register() (ours and django-celery-beat's) lands on it."""

    default = False  # AdminConfig says True; "digest" in INSTALLED_APPS must still mean DigestConfig
    default_site = "digest.console.ConsoleSite"
