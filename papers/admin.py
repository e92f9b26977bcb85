"""Papers and scrapes in the console: what came in, what is pinned or hidden, and scraping on demand."""

import json
from datetime import date
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from papers import services
from papers.actions import action_form
from papers.models import Paper, Pin, ScrapeRun


class PinForm(forms.Form):
    day = forms.DateField(widget=AdminDateWidget, help_text="The digest date the papers are pinned for.")
    note = forms.CharField(max_length=300, required=False, help_text="Optional; shown in the email beside the paper.")


class ScrapeForm(forms.Form):
    day = forms.DateField(widget=AdminDateWidget, help_text="The Hugging Face daily list to fetch.")

    def clean_day(self) -> date:
        day = self.cleaned_data["day"]
        if day > services.local_today():
            raise forms.ValidationError("That day is in the future: there is no list to scrape yet.")
        return day


class PinnedFilter(admin.SimpleListFilter):
    title = "pinned"
    parameter_name = "pinned"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Pinned for some day"), ("no", "Never pinned")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Paper]) -> QuerySet[Paper]:
        if self.value() == "yes":
            return queryset.filter(is_pinned=True)
        if self.value() == "no":
            return queryset.filter(is_pinned=False)
        return queryset


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin):
    list_display = [
        "thumb",
        "title",
        "arxiv_id",
        "featured_on",
        "upvotes",
        "github_stars",
        "keywords",
        "pinned",
        "hidden",
    ]
    list_display_links = ["title"]
    list_filter = ["featured_on", PinnedFilter, "hidden"]
    search_fields = ["title", "abstract", "=arxiv_id", "authors"]
    date_hierarchy = "featured_on"
    list_per_page = 50
    show_full_result_count = False  # no second COUNT over 50,000 rows on every search
    actions = ["pin_for_day", "hide", "unhide"]
    # Papers come from the feed; in the console only the curator's choice is editable.
    readonly_fields = [f.name for f in Paper._meta.fields if f.name != "hidden"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Paper]:
        # One EXISTS per page instead of one pin query per row.
        return (
            super()
            .get_queryset(request)
            .annotate(is_pinned=Exists(Pin.objects.filter(paper=OuterRef("pk"))))
            .defer("abstract", "ai_summary")
        )

    def get_search_results(self, request: HttpRequest, queryset: QuerySet[Paper], search_term: str) -> Any:
        filtered = queryset
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        # Authors are a JSON list; SQLite keeps non-ASCII names \u-escaped in its text.
        if search_term and not search_term.isascii():
            escaped = json.dumps(search_term.strip())[1:-1]
            queryset |= filtered.filter(authors__icontains=escaped)
        return queryset, may_have_duplicates

    @admin.display(description="")
    def thumb(self, paper: Paper) -> str:
        if not paper.thumbnail:
            return ""
        return format_html(
            '<img src="{}" alt="" width="64" height="36" loading="lazy" style="object-fit:cover">', paper.thumbnail
        )

    @admin.display(description="keywords")
    def keywords(self, paper: Paper) -> str:
        return ", ".join(paper.ai_keywords[:5])

    @admin.display(description="pinned", boolean=True, ordering="is_pinned")
    def pinned(self, paper: Paper) -> bool:
        return paper.is_pinned  # type: ignore[attr-defined]

    @admin.action(description="Pin for a date …", permissions=["change"])
    def pin_for_day(self, request: HttpRequest, queryset: QuerySet[Paper]) -> HttpResponse | None:
        form = PinForm(request.POST if "apply" in request.POST else None, initial={"day": services.local_today()})
        if form.is_valid():
            try:
                count = services.papers_pin(
                    paper_ids=queryset.values_list("pk", flat=True),
                    day=form.cleaned_data["day"],
                    note=form.cleaned_data["note"],
                    by=request.user,
                )
            except services.CurationError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self.message_user(request, f"Pinned {count} paper(s) for {form.cleaned_data['day']}.", messages.SUCCESS)
            return None
        return action_form(
            self, request, queryset, action="pin_for_day", title="Pin papers for a date", submit="Pin", form=form
        )

    @admin.action(description="Hide from digests", permissions=["change"])
    def hide(self, request: HttpRequest, queryset: QuerySet[Paper]) -> None:
        count = services.papers_hide(paper_ids=queryset.values_list("pk", flat=True), hidden=True)
        self.message_user(request, f"Hid {count} paper(s): they will not be in any digest.", messages.SUCCESS)

    @admin.action(description="Unhide", permissions=["change"])
    def unhide(self, request: HttpRequest, queryset: QuerySet[Paper]) -> None:
        count = services.papers_hide(paper_ids=queryset.values_list("pk", flat=True), hidden=False)
        self.message_user(request, f"Unhid {count} paper(s).", messages.SUCCESS)


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
        "short_error",
    ]
    list_filter = ["status", "source", "day"]
    list_per_page = 50
    readonly_fields = [f.name for f in ScrapeRun._meta.fields]
    actions = ["rerun"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs are records of what happened; "Scrape a day now" starts a new one

    def has_change_permission(self, request: HttpRequest, obj: ScrapeRun | None = None) -> bool:
        return False

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("papers.run_scrape")

    @admin.display(description="error")
    def short_error(self, run: ScrapeRun) -> str:
        return run.error if len(run.error) <= 120 else run.error[:119] + "…"

    def get_urls(self) -> list[Any]:
        scrape = path("scrape/", self.admin_site.admin_view(self.scrape_view), name="papers_scraperun_scrape")
        return [scrape, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {**(extra_context or {}), "can_scrape": self.has_run_permission(request)}
        return super().changelist_view(request, extra_context)

    def scrape_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_run_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        form = ScrapeForm(request.POST or None, initial={"day": services.local_today()})
        if form.is_valid() and self._enqueue(request, form.cleaned_data["day"]):
            return HttpResponseRedirect(reverse("admin:papers_scraperun_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Scrape a day now",
            "opts": self.model._meta,
            "form": form,
            "media": self.media + form.media,
            "submit": "Scrape now",
        }
        return TemplateResponse(request, "admin/console/form_page.html", context)

    def _enqueue(self, request: HttpRequest, day: date) -> bool:
        try:
            services.scrape_enqueue(day=day)
        except services.CurationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return False
        except Exception as exc:  # the broker is down: say so instead of a 500
            self.message_user(request, f"Could not queue the scrape of {day}: {exc}", messages.ERROR)
            return False
        self.message_user(request, f"Scrape of {day} queued; its run appears here when it starts.", messages.SUCCESS)
        return True

    @admin.action(description="Re-run failed days", permissions=["run"])
    def rerun(self, request: HttpRequest, queryset: QuerySet[ScrapeRun]) -> None:
        days = sorted(
            set(queryset.filter(status=ScrapeRun.Status.FAILED, day__isnull=False).values_list("day", flat=True))
        )
        if not days:
            self.message_user(
                request, "None of the chosen runs is a failed daily run: nothing to re-run.", messages.WARNING
            )
            return
        for day in days:
            if not self._enqueue(request, day):
                return


@admin.register(Pin)
class PinAdmin(admin.ModelAdmin):
    list_display = ["day", "paper", "note", "created_by", "created_at"]
    list_select_related = ["paper", "created_by"]
    list_filter = ["day"]
    search_fields = ["paper__title", "=paper__arxiv_id", "note"]
    raw_id_fields = ["paper"]
    readonly_fields = ["created_by", "created_at"]
    list_per_page = 50

    def save_model(self, request: HttpRequest, obj: Pin, form: forms.ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
