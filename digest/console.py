"""The curator console: Django's admin site with a dashboard, digest previews and rate-limited logins."""

from datetime import date
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.widgets import AdminDateWidget
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from digest import selectors, sending
from digest.addresses import normalize_email
from digest.http import client_ip
from digest.models import Subscriber
from digest.services import rate_limit_hit

LOGIN_LIMITED = "Too many failed logins from here or for this user. Wait {minutes} minutes, then try again."


class ConsoleSite(admin.AdminSite):
    site_header = "Paper Digest console"
    site_title = "Paper Digest console"
    index_title = "Today"
    index_template = "admin/console/index.html"
    login_template = "admin/console/login.html"

    def get_urls(self) -> list[Any]:
        return [
            path("preview/", self.admin_view(self.preview_view), name="digest_preview"),
            path("preview/html/", self.admin_view(self.preview_html_view), name="digest_preview_html"),
            *super().get_urls(),
        ]

    # --- dashboard ----------------------------------------------------------------

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        board = selectors.dashboard(today=timezone.localdate(), now=timezone.now())
        context = {
            "board": board,
            "growth_svg": growth_chart(board.growth),
            "can_preview": request.user.has_perm("digest.preview_digest"),
            **(extra_context or {}),
        }
        return super().index(request, context)

    # --- login --------------------------------------------------------------------

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Refuse logins, without checking the password, from an IP address that failed too
        often within LOGIN_FAILURE_WINDOW, and for a username that did, from the addresses
        that failed for it: a stranger's guesses must not keep the curator out."""
        if request.method != "POST":
            return super().login(request, extra_context)
        ip = client_ip(request)
        username = request.POST.get("username", "").strip().lower()[:150]
        ip_key = f"console-login:ip:{ip}"
        user_key = f"console-login:user:{username}"
        failed_here = f"{user_key}:failed-from:{ip}"
        if cache.get(f"locked:{ip_key}") or (cache.get(f"locked:{user_key}") and cache.get(failed_here)):
            return self._login_limited(request, username)
        response = super().login(request, extra_context)
        failed = response.status_code == 200  # success redirects; a refused form is shown again
        if failed:
            window = settings.LOGIN_FAILURE_WINDOW
            cache.set(failed_here, True, timeout=window)
            for key, limit in (
                (ip_key, settings.LOGIN_FAILURES_PER_IP),
                (user_key, settings.LOGIN_FAILURES_PER_USERNAME),
            ):
                # The limit-th failure locks: the next attempt is refused.
                if rate_limit_hit(key, limit=limit - 1, window=window):
                    cache.set(f"locked:{key}", True, timeout=window)
        return response

    def _login_limited(self, request: HttpRequest, username: str) -> TemplateResponse:
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "form": AdminAuthenticationForm(request, initial={"username": username}),
            "limited": LOGIN_LIMITED.format(minutes=max(1, settings.LOGIN_FAILURE_WINDOW // 60)),
            "next": request.GET.get("next", ""),
        }
        return TemplateResponse(request, self.login_template, context, status=429)

    # --- preview ------------------------------------------------------------------

    def _preview_request(self, request: HttpRequest) -> tuple["PreviewForm", Any, str]:
        """The form, the preview (or None) and why there is none."""
        if not request.user.has_perm("digest.preview_digest"):
            raise PermissionDenied
        data = request.POST if request.method == "POST" else request.GET
        form = PreviewForm(data if "subscriber" in data else None, initial={"day": timezone.localdate()})
        if not form.is_valid():
            return form, None, ""
        try:
            preview = sending.preview_digest(subscriber=form.cleaned_data["subscriber"], day=form.cleaned_data["day"])
        except sending.NothingToSend as exc:
            return form, None, str(exc)
        return form, preview, ""

    def preview_view(self, request: HttpRequest) -> HttpResponse:
        """Any subscriber's digest for any date, exactly as it would be sent, and a button
        that sends that very email to the curator."""
        form, preview, nothing = self._preview_request(request)
        if request.method == "POST" and form.is_valid():
            back = reverse("admin:digest_preview") + "?" + form.query_string()
            to = request.user.email
            if not to:
                self.message_user(request, "Your account has no email address to send the preview to.", messages.ERROR)
                return HttpResponseRedirect(back)
            try:
                sending.send_preview(subscriber=form.cleaned_data["subscriber"], day=form.cleaned_data["day"], to=to)
            except sending.NothingToSend as exc:
                self.message_user(request, str(exc), messages.ERROR)
            except Exception as exc:  # SMTP trouble: say so instead of a 500
                self.message_user(request, f"Could not send the preview: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"Preview sent to {to}.", messages.SUCCESS)
            return HttpResponseRedirect(back)
        context = {
            **self.each_context(request),
            "title": "Preview a digest",
            "form": form,
            "media": form.media,
            "preview": preview,
            "nothing": nothing,
            "html_url": reverse("admin:digest_preview_html") + "?" + form.query_string() if preview else "",
        }
        return TemplateResponse(request, "admin/console/preview.html", context)

    def preview_html_view(self, request: HttpRequest) -> HttpResponse:
        """The preview's HTML alone, to open in its own tab."""
        _, preview, nothing = self._preview_request(request)
        if preview is None:
            return HttpResponse(nothing or "Choose a subscriber and a date.", status=404, content_type="text/plain")
        return HttpResponse(preview.html)

    def message_user(self, request: HttpRequest, message: str, level: int = messages.INFO) -> None:
        messages.add_message(request, level, message)


class PreviewForm(forms.Form):
    subscriber = forms.CharField(label="Subscriber", help_text="Their email address or id.")
    day = forms.DateField(label="Date", widget=AdminDateWidget, help_text="The digest's date.")

    def clean_subscriber(self) -> Subscriber:
        value = self.cleaned_data["subscriber"].strip()
        found = (
            Subscriber.objects.filter(pk=int(value)).first()
            if value.isdigit()
            else Subscriber.objects.filter(email=normalize_email(value)).first()
        )
        if found is None:
            raise forms.ValidationError(f"No subscriber with the address or id {value!r}.")
        return found

    def query_string(self) -> str:
        from urllib.parse import urlencode

        day: date = self.cleaned_data["day"]
        return urlencode({"subscriber": self.cleaned_data["subscriber"].pk, "day": day.isoformat()})


def growth_chart(points: list[tuple[date, int]], *, width: int = 600, height: int = 120) -> SafeString:
    """Subscribers over time as an inline SVG line, drawn on the server (nothing from a CDN)."""
    if not points:
        return mark_safe("")
    values = [v for _, v in points]
    low, high = min(values), max(values)
    pad = 8
    span = (high - low) or 1
    step = (width - 2 * pad) / max(1, len(values) - 1)
    coords = [(pad + i * step, height - pad - (v - low) / span * (height - 2 * pad)) for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    area = f"{pad:.1f},{height - pad} {line} {coords[-1][0]:.1f},{height - pad}"
    first, last = points[0], points[-1]
    summary = f"{first[1]} subscribers on {first[0]:%b %d}, {last[1]} on {last[0]:%b %d}"
    return format_html(
        '<svg class="growth" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        'xmlns="http://www.w3.org/2000/svg"><title>{summary}</title>'
        '<polygon points="{area}" fill="#79aec8" fill-opacity="0.25"/>'
        '<polyline points="{line}" fill="none" stroke="#417690" stroke-width="2"/>'
        '<text x="{pad}" y="14" font-size="12" fill="#666">{high}</text>'
        '<text x="{pad}" y="{bottom}" font-size="12" fill="#666">{low}</text></svg>',
        w=width,
        h=height,
        summary=summary,
        area=area,
        line=line,
        pad=pad + 2,
        high=high,
        low=low,
        bottom=height - pad - 2,
    )
