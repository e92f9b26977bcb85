from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class DigestConfig(AppConfig):
    name = "digest"
    verbose_name = "Digest"


class ConsoleAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with the curator console as the default site, so every
    admin.register() (ours and django-celery-beat's) lands on it."""

    default = False  # AdminConfig says True; "digest" in INSTALLED_APPS must still mean DigestConfig
    default_site = "digest.console.ConsoleSite"
