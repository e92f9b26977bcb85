from django.contrib import admin

from papers.models import Paper, Pin, ScrapeRun


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = ["arxiv_id", "title", "featured_on", "upvotes", "github_stars", "hidden"]
    list_filter = ["featured_on", "hidden"]
    search_fields = ["arxiv_id", "title", "abstract"]
    date_hierarchy = "featured_on"
    readonly_fields = ["first_seen_at", "updated_at"]


@admin.register(ScrapeRun)
class ScrapeRunAdmin(admin.ModelAdmin):
    list_display = [
        "started_at",
        "source",
        "day",
        "status",
        "via",
        "papers_seen",
        "papers_new",
        "papers_updated",
    ]
    list_filter = ["status", "source"]
    readonly_fields = [f.name for f in ScrapeRun._meta.fields]


@admin.register(Pin)
class PinAdmin(admin.ModelAdmin):
    list_display = ["day", "paper", "note"]
    raw_id_fields = ["paper"]
