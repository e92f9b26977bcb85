"""The curator console: Django's admin site with a dashboard, digest previews and rate-limited logins."""

from django.contrib import admin


class ConsoleSite(admin.AdminSite):
    site_header = "Paper Digest console"
    site_title = "Paper Digest console"
    index_title = "Today"
