"""Subscribers, deliveries and the schedule in the console.

Curators see everything here read-only and act through actions, each a thin door into
a service; erasing a subscriber is for superusers (see the roles in docs/operations.md).
"""

import csv
from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from digest import sending, services
from digest.addresses import normalize_email
from digest.forms import SingleLineEmailField
from digest.models import ConsentRecord, Delivery, RejectedReport, SentPaper, Subscriber, Suppression
from papers.actions import action_form

# The subscriber page lists this many of the latest deliveries and papers; the rest are a link away.
RECENT_ROWS = 30


# OWASP's CSV injection rule: a spreadsheet runs a cell starting with one of these as a
# formula (a topic "=HYPERLINK(...)" would become a live link), so such cells get a "'".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """One value of the CSV export as a spreadsheet will show it, never as a formula."""
    if isinstance(value, list):
        value = "; ".join(str(v) for v in value)
    elif hasattr(value, "isoformat"):
        value = value.isoformat()
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class TextListFilter(admin.ListFilter):
    """A list filter with a text box (Django's built-in ones only offer choices)."""

    template = "admin/console/text_filter.html"
    parameter_name = ""
    lookup = ""

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        raw = params.pop(self.parameter_name, None)
        value = raw[-1] if isinstance(raw, list) else raw
        self.value = (value or "").strip()

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return [self.parameter_name]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(**{self.lookup: self.value}) if self.value else queryset

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        # The template reads these to keep the other filters when the box is submitted.
        yield {
            "value": self.value,
            "parameter_name": self.parameter_name,
            "others": [
                (k, v)
                for k, values in changelist.get_filters_params().items()
                if k != self.parameter_name
                for v in (values if isinstance(values, list) else [values])
            ],
            "clear_url": changelist.get_query_string(remove=[self.parameter_name]),
        }


class TopicFilter(TextListFilter):
    title = "topic"
    parameter_name = "topic"
    # Topics are a JSON list of phrases: match the phrase anywhere in the list's text.
    lookup = "topics__icontains"


class ConsentInline(admin.TabularInline):
    model = ConsentRecord
    fields = ["created_at", "ip", "user_agent", "form_version", "confirmed_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SubscriberForm(forms.ModelForm):
    # The signup form's field: an edited address is stored in the one spelling that
    # caps, suppression and uniqueness compare (digest/addresses.py).
    email = SingleLineEmailField(max_length=254)

    class Meta:
        model = Subscriber
        fields = ["email"]  # the admin adds the fieldsets' other fields


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberForm
    list_display = [
        "email",
        "status",
        "frequency",
        "topic_list",
        "send_hour",
        "time_zone",
        "created_at",
        "confirmed_at",
    ]
    list_filter = ["status", "frequency", TopicFilter]
    search_fields = ["email"]
    list_per_page = 50
    show_full_result_count = False  # no second COUNT over 100,000 rows on every search
    show_facets = admin.ShowFacets.NEVER  # a COUNT per filter choice on every page is too dear here
    inlines = [ConsentInline]
    actions = ["pause", "resume", "resend_confirmation", "suppress", "export_csv", "erase"]
    readonly_fields = [
        "key",
        "bounce_count",
        "created_at",
        "confirmation_sent_at",
        "confirmed_at",
        "paused_at",
        "unsubscribed_at",
        "updated_at",
        "preview_link",
        "recent_deliveries",
        "papers_received",
    ]
    fieldsets = [
        (None, {"fields": ["email", "status", "preview_link"]}),
        (
            "Preferences",
            {
                "fields": [
                    "topics",
                    "excludes",
                    "authors",
                    "organizations",
                    "frequency",
                    "send_hour",
                    "time_zone",
                    "max_papers",
                    "weights",
                ]
            },
        ),
        (
            "History",
            {
                "fields": [
                    "created_at",
                    "confirmation_sent_at",
                    "confirmed_at",
                    "paused_at",
                    "unsubscribed_at",
                    "updated_at",
                    "bounce_count",
                    "key",
                ]
            },
        ),
        ("Deliveries", {"fields": ["recent_deliveries"]}),
        ("Papers received", {"fields": ["papers_received"]}),
    ]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Subscriber], search_term: str
    ) -> tuple[QuerySet[Subscriber], bool]:
        # Addresses are stored in their normalized spelling: search in it too, so a
        # look-alike spelling of an address finds it.
        if "@" in search_term:
            search_term = normalize_email(search_term)
        return super().get_search_results(request, queryset, search_term)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting the row directly would skip the suppression that erasing keeps: use "Erase".
        return False

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("digest.manage_subscriber")

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    @admin.display(description="topics")
    def topic_list(self, subscriber: Subscriber) -> str:
        return ", ".join(subscriber.topics)

    @admin.display(description="preview")
    def preview_link(self, subscriber: Subscriber) -> str:
        url = reverse("admin:digest_preview") + f"?subscriber={subscriber.pk}"
        return format_html('<a href="{}">Preview this subscriber\'s digest</a>', url)

    @admin.display(description=f"latest {RECENT_ROWS}")
    def recent_deliveries(self, subscriber: Subscriber) -> str:
        rows = subscriber.deliveries.order_by("-digest_date")[:RECENT_ROWS]
        all_url = reverse("admin:digest_delivery_changelist") + f"?subscriber__exact={subscriber.pk}"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (d.digest_date, d.get_status_display(), d.attempts, d.sent_at or "", len(d.papers), d.error[:200])
                for d in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>date</th><th>outcome</th><th>attempts</th><th>sent</th><th>papers</th>"
            '<th>error</th></tr></thead><tbody>{}</tbody></table><p><a href="{}">All deliveries</a></p>',
            body or mark_safe('<tr><td colspan="6">none yet</td></tr>'),
            all_url,
        )

    @admin.display(description=f"latest {RECENT_ROWS}")
    def papers_received(self, subscriber: Subscriber) -> str:
        rows = (
            SentPaper.objects.filter(subscriber=subscriber)
            .select_related("paper")
            .only("sent_on", "paper__arxiv_id", "paper__title")
            .order_by("-sent_on", "-pk")[:RECENT_ROWS]
        )
        body = format_html_join(
            "",
            '<tr><td>{}</td><td><a href="{}">{}</a></td><td>{}</td></tr>',
            (
                (s.sent_on, reverse("admin:papers_paper_change", args=[s.paper_id]), s.paper.arxiv_id, s.paper.title)
                for s in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>sent on</th><th>arXiv</th><th>title</th></tr></thead><tbody>{}</tbody></table>",
            body or mark_safe('<tr><td colspan="3">none yet</td></tr>'),
        )

    @admin.action(description="Pause", permissions=["manage"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        paused = 0
        for subscriber in queryset.filter(status=Subscriber.Status.ACTIVE):
            services.subscriber_pause(subscriber=subscriber)
            paused += 1
        self.message_user(request, f"Paused {paused} active subscriber(s); their queued digests are skipped.")

    @admin.action(description="Resume (paused only)", permissions=["manage"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        # Only the person may undo an unsubscribe (consent); a curator only lifts a pause.
        resumed = 0
        for subscriber in queryset.filter(status=Subscriber.Status.PAUSED):
            services.subscriber_resume(subscriber=subscriber)
            resumed += 1
        left = queryset.exclude(status=Subscriber.Status.ACTIVE).count()
        text = f"Resumed {resumed} paused subscriber(s)."
        if left:
            text += f" {left} not paused left as they were: only the person can resubscribe."
        self.message_user(request, text, messages.SUCCESS if not left else messages.WARNING)

    @admin.action(description="Resend confirmation", permissions=["manage"])
    def resend_confirmation(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        outcomes: dict[str, int] = {"queued": 0, "not-pending": 0, "limited": 0}
        for subscriber in queryset:
            outcomes[services.confirmation_resend(subscriber=subscriber)] += 1
        text = f"Queued {outcomes['queued']} confirmation email(s)."
        if outcomes["not-pending"]:
            text += f" {outcomes['not-pending']} not waiting for confirmation: skipped."
        if outcomes["limited"]:
            text += f" {outcomes['limited']} had {services.MAILS_PER_ADDRESS_PER_DAY} emails today: try tomorrow."
        level = messages.SUCCESS if outcomes["queued"] == sum(outcomes.values()) else messages.WARNING
        self.message_user(request, text, level)

    @admin.action(description="Suppress (never mail again)", permissions=["manage"])
    def suppress(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        count = 0
        for subscriber in queryset:
            services.subscriber_suppress(subscriber=subscriber)
            count += 1
        self.message_user(request, f"Suppressed {count} address(es): unsubscribed and never mailed again.")

    @admin.action(description="Export CSV", permissions=["manage"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> StreamingHttpResponse:
        columns = ["email", "status", "frequency", "topics", "excludes", "authors", "organizations", "send_hour"]
        columns += ["time_zone", "max_papers", "created_at", "confirmed_at", "paused_at", "unsubscribed_at"]

        class Echo:
            def write(self, value: str) -> str:
                return value

        writer = csv.writer(Echo())

        def rows() -> Iterator[str]:
            yield writer.writerow(columns)
            for values in queryset.order_by("pk").values_list(*columns).iterator(chunk_size=2000):
                yield writer.writerow(csv_cell(v) for v in values)

        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="subscribers-{stamp}.csv"'
        return response

    @admin.action(description="Erase (delete their data for good) …", permissions=["erase"])
    def erase(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> HttpResponse | None:
        if "apply" not in request.POST:
            return action_form(
                self,
                request,
                queryset,
                action="erase",
                title="Erase subscribers",
                submit="Erase for good",
                warning="Their data, deliveries and consent records are deleted; only a keyed hash of each "
                "address is kept so it is never mailed again. This cannot be undone.",
            )
        count = 0
        for subscriber in queryset:
            services.subscriber_delete(subscriber=subscriber)
            count += 1
        self.message_user(request, f"Erased {count} subscriber(s).", messages.SUCCESS)
        return None


class HasErrorFilter(admin.SimpleListFilter):
    title = "error"
    parameter_name = "has_error"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "With an error"), ("no", "Without")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> QuerySet[Delivery]:
        if self.value() == "yes":
            return queryset.exclude(error="")
        if self.value() == "no":
            return queryset.filter(error="")
        return queryset


class ErrorFilter(TextListFilter):
    title = "error contains"
    parameter_name = "error"
    lookup = "error__icontains"


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ["digest_date", "subscriber", "status", "attempts", "sent_at", "paper_count", "short_error"]
    list_select_related = ["subscriber"]
    list_filter = ["status", HasErrorFilter, ErrorFilter]
    date_hierarchy = "digest_date"
    search_fields = ["subscriber__email"]
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # 100,000 rows a day: no COUNT per filter choice
    actions = ["retry_failed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # deliveries are planned by the sender, never by hand

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the ledger is what makes sending exactly-once

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("digest.retry_delivery")

    @admin.display(description="papers")
    def paper_count(self, delivery: Delivery) -> int:
        return len(delivery.papers)

    @admin.display(description="error")
    def short_error(self, delivery: Delivery) -> str:
        return delivery.error if len(delivery.error) <= 120 else delivery.error[:119] + "…"

    @admin.action(description="Retry failed, bounced and stuck", permissions=["retry"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        ids = list(queryset.filter(status__in=Delivery.RETRYABLE).values_list("pk", flat=True))
        left = queryset.count() - len(ids)
        count = sending.deliveries_retry(ids) if ids else 0
        text = f"{count} delivery(ies) back to pending and queued for sending."
        if left:
            text += f" {left} not failed, bounced or stuck: left alone."
        self.message_user(request, text, messages.SUCCESS if count else messages.WARNING)


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    list_display = ["subscriber", "created_at", "ip", "form_version", "confirmed_at"]
    list_select_related = ["subscriber"]
    search_fields = ["subscriber__email", "=ip"]
    list_filter = ["form_version"]
    list_per_page = 50
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # proof of opt-in is never edited


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["email_hash", "reason", "created_at"]
    list_filter = ["reason"]
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # suppress from the subscriber list, which knows the address

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RejectedReport)
class RejectedReportAdmin(admin.ModelAdmin):
    """Bounces, complaints and unsubscribes that proved nothing (digest/inbound.py): read only."""

    list_display = ["received_at", "source", "kind", "recipient", "reason", "message_id"]
    list_filter = ["source", "kind"]
    search_fields = ["recipient", "message_id", "report_id"]
    list_per_page = 50

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- the schedule -------------------------------------------------------------------

admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """django-celery-beat's admin, with its actions behind a permission curators hold
    (run_periodictask) while editing a schedule stays with superusers."""

    actions = ["enable", "disable", "run_now"]

    def has_run_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("django_celery_beat.run_periodictask")

    @admin.action(description="Enable", permissions=["run"])
    def enable(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = queryset.update(enabled=True)
        PeriodicTasks.update_changed()  # tells beat to reload the schedule
        self.message_user(request, f"Enabled {count} task(s).")

    @admin.action(description="Disable", permissions=["run"])
    def disable(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = queryset.update(enabled=False)
        PeriodicTasks.update_changed()
        self.message_user(request, f"Disabled {count} task(s); they stay disabled across restarts.")

    @admin.action(description="Run now", permissions=["run"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        sent = []
        for task in queryset:
            try:
                services.periodic_task_send(task=task)
            except Exception as exc:  # the broker is down: say so instead of a 500
                self.message_user(request, f"Could not send {task.name}: {exc}", messages.ERROR)
                return
            sent.append(task.name)
        self.message_user(request, f"Sent to a worker: {', '.join(sent)}.", messages.SUCCESS)
