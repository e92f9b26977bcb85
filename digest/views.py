import functools
from collections.abc import Callable
from datetime import date
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.http import http_date
from django.views.decorators.cache import cache_page, never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from digest import liked, selectors, sending, services
from digest.forms import (
    DEFAULT_PAPERS,
    FORM_VERSION,
    MAX_LIST_INPUT,
    MAX_PAPERS,
    MAX_PHRASE_LENGTH,
    MAX_PHRASES,
    MIN_PAPERS,
    PreferencesForm,
    SignupForm,
    has_control_characters,
    phrase_text_problem,
    refuse_unreadable,
    split_phrases,
    time_zone_options,
)
from digest.http import client_ip, form_data
from digest.models import LikedPaper, Subscriber
from digest.tokens import BadToken, feed_url, make_token, read_feedback_token, read_token
from papers.ids import arxiv_id as read_arxiv_id
from papers.ids import parse_arxiv_ids


def _lenient_phrases(value: str) -> list[str]:
    """For the preview only: use what makes sense of half-typed input instead of refusing it."""
    value = "".join(" " if has_control_characters(ch) else ch for ch in value[:MAX_LIST_INPUT])
    return [p for p in split_phrases(value) if len(p) <= MAX_PHRASE_LENGTH][:MAX_PHRASES]


PHRASE_FIELDS = ("topics", "excludes", "authors", "organizations")
# The preview reads this many ids of a pasted list (a GET carries it), and this much text.
PREVIEW_SEED_IDS = 100
PREVIEW_SEED_INPUT = PREVIEW_SEED_IDS * 60


def _preview(data: QueryDict) -> dict[str, Any]:
    """The preview's context; half-typed input is read leniently, but text the form would
    refuse as unreadable or invisible gets the form's field error instead of a preview."""
    errors = []
    for name in PHRASE_FIELDS:
        problem = phrase_text_problem(data.get(name, "")[:MAX_LIST_INPUT])
        if problem:
            errors.append((PreferencesForm.base_fields[name].label, problem))
    if errors:
        return {"preview_errors": errors, "preview_asked": True, "preview_items": []}
    try:
        limit = min(max(int(data.get("max_papers", DEFAULT_PAPERS)), MIN_PAPERS), MAX_PAPERS)
    except ValueError:
        limit = DEFAULT_PAPERS
    filters = {name: _lenient_phrases(data.get(name, "")) for name in PHRASE_FIELDS}
    pasted = parse_arxiv_ids(data.get(PreferencesForm.LIKED_FIELD, "")[:PREVIEW_SEED_INPUT])
    seed_ids = list(pasted.ids[:PREVIEW_SEED_IDS])
    asked = any(filters[n] for n in ("topics", "authors", "organizations")) or bool(seed_ids)
    items = selectors.preview_papers(**filters, liked=seed_ids, limit=limit) if asked else []
    return {
        "preview_items": items,
        "preview_asked": asked,
        "preview_days": selectors.recent_days(),
        "preview_seeds": selectors.preview_seeds(seed_ids, bad=pasted.bad),
    }


def _signup_page(request: HttpRequest, form: SignupForm, *, status: int = 200, **extra: Any) -> HttpResponse:
    # The template caches the empty form's fields for everyone; a page showing anything a
    # person typed or was told (a bound form, typed initial values, a preview) renders its own.
    untouched = not form.is_bound and not form.initial and not extra.get("preview_asked")
    context = {
        "form": form,
        "empty_form": SignupForm() if untouched else None,
        "suggestions": selectors.topic_suggestions(),
        "time_zone_options": time_zone_options(),
        "preview_items": [],
        "preview_asked": False,
        **extra,
    }
    return render(request, "digest/home.html", context, status=status)


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _signup_page(request, SignupForm())
    data, readable = form_data(request)
    if data.get("action") == "preview":
        # The no-JavaScript preview: show the page again with what was typed, unjudged.
        if _preview_limited(request):
            return render(request, "digest/slow_down.html", status=429)
        typed = {name: data.get(name, "") for name in SignupForm.base_fields if name != "website"}
        preview = _preview(data)
        status = 400 if preview.get("preview_errors") else 200
        return _signup_page(request, SignupForm(initial=typed), status=status, **preview)
    ip = client_ip(request)
    if services.rate_limit_hit(f"signup-ip:{ip}", limit=settings.SIGNUP_PER_IP_PER_HOUR, window=3600):
        return render(request, "digest/slow_down.html", status=429)
    form = SignupForm(data)
    if form.is_spam():
        return redirect("subscribed")  # a bot learns nothing; nothing is stored
    valid = form.is_valid()
    if not readable:
        refuse_unreadable(form)
    if not valid or not readable:
        return _signup_page(request, form, status=400)
    # Fetched whatever the address: the answer takes as long and says the same for every one.
    seeds = liked.prefetch(form.liked_papers())
    services.subscriber_subscribe(
        email=form.cleaned_data["email"],
        preferences=form.preferences(),
        ip=ip,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        form_version=FORM_VERSION,
        seeds=seeds,
    )
    # One answer for every address, known or not (no enumeration).
    query = QueryDict(mutable=True)
    if seeds.later:
        query["later"] = str(seeds.later)
    if seeds.missing:
        query["missing"] = ",".join(i for i in seeds.ids if i in seeds.missing)
    return redirect(f"{reverse('subscribed')}?{query.urlencode()}" if query else reverse("subscribed"))


# The "check your inbox" page names at most this many ids not found.
MISSING_SHOWN = 50


def subscribed(request: HttpRequest) -> HttpResponse:
    """What the signup said about its papers travels in the query (it is the same for every
    address); only numbers and well-formed ids are read back."""
    try:
        later = max(0, min(int(request.GET.get("later", "0")), liked.MAX_LIKED_PAPERS))
    except ValueError:
        later = 0
    pieces = request.GET.get("missing", "")[: MISSING_SHOWN * 12].split(",")
    missing = [found for piece in pieces if (found := read_arxiv_id(piece))][:MISSING_SHOWN]
    return render(request, "digest/subscribed.html", {"later": later, "missing": missing})


def _preview_limited(request: HttpRequest) -> bool:
    key = f"preview-ip:{client_ip(request)}"
    return services.rate_limit_hit(key, limit=settings.PREVIEW_PER_IP_PER_MINUTE, window=60)


@require_GET
def preview(request: HttpRequest) -> HttpResponse:
    """The live preview's HTML fragment, fetched by the signup page as topics are typed."""
    if _preview_limited(request):
        return HttpResponse("<p>Too many previews; wait a minute.</p>", status=429)
    context = _preview(request.GET)
    return render(request, "digest/_preview.html", context, status=400 if context.get("preview_errors") else 200)


def _bad_link(request: HttpRequest, error: BadToken | str) -> HttpResponse:
    return render(request, "digest/bad_link.html", {"error": str(error)}, status=400)


def signed_link(purpose: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """Views behind a signed link: the token is read (and checked) once, here; a bad one
    gets the bad-link page, and the view receives the subscriber and the token's extras."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, token: str) -> HttpResponse:
            try:
                subscriber, extra = read_token(token, purpose)
            except BadToken as exc:
                return _bad_link(request, exc)
            return view(request, token=token, subscriber=subscriber, extra=extra)

        return wrapper

    return decorate


# A subscription a used confirmation link may have a preferences link mailed for.
LIVE_STATUSES = (Subscriber.Status.ACTIVE, Subscriber.Status.PAUSED)


@never_cache
@require_http_methods(["GET", "POST"])
@signed_link("confirm")
def confirm(request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]) -> HttpResponse:
    """GET shows a button; only the POST confirms, so mail scanners that open links cannot."""
    consent_id = extra.get("c")
    if not isinstance(consent_id, int):
        return _bad_link(request, "this link is not valid")
    outcome, consent = services.confirmation_state(subscriber=subscriber, consent_id=consent_id)
    if request.method == "POST":
        outcome = services.subscriber_confirm(subscriber=subscriber, consent_id=consent_id)
    # What this link confirms: its own signup's choices (the row's, for older records).
    choices = (consent.preferences if consent else None) or _preferences_of(subscriber)
    context = {
        "subscriber": subscriber,
        "outcome": outcome,
        "choices": choices,
        "frequency_label": Subscriber.Frequency(choices["frequency"]).label,
        "token": token,
        "live": subscriber.status in LIVE_STATUSES,
        # Opened again later, a used link may be in anyone's hands: no link to the preferences then.
        "manage_path": _manage_path(subscriber) if outcome == "confirmed" else "",
    }
    return render(request, "digest/confirm.html", context)


@never_cache
@require_POST
@signed_link("confirm")
def confirm_manage_link(
    request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]
) -> HttpResponse:
    """From a used confirmation link: mail the address a link to its preferences. The page
    links nothing personal itself, since a confirmation email can be forwarded or shared."""
    if subscriber.status not in LIVE_STATUSES:
        return redirect("confirm", token=token)  # pending or unsubscribed: that page says what to do
    context = {
        "subscriber": subscriber,
        "outcome": "already",
        "token": token,
        "live": True,
        "link": services.manage_link_request(subscriber=subscriber),
        "mails_per_day": services.MAILS_PER_ADDRESS_PER_DAY,
    }
    return render(request, "digest/confirm.html", context)


def _manage_path(subscriber: Subscriber) -> str:
    return reverse("manage", args=[make_token(subscriber, "manage")])


DONE_MESSAGES = {
    "saved": "Your preferences are saved.",
    "paused": "Your digest is paused. Resume it whenever you like.",
    "resumed": "Your digest is on again.",
    "unsubscribed": "You are unsubscribed. No more digests will be sent.",
    "feed-reset": "Your feed has a new link; the old one no longer works. Paste the new one into your reader.",
    "papers-added": "Your preferences are saved and your papers added (see “Your papers” below).",
    "paper-removed": "The paper is off your list.",
    "keep-one": "That is your last paper and you follow no topic: add a topic before removing it.",
}


@never_cache
@require_http_methods(["GET", "POST"])
@signed_link("manage")
def manage(request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]) -> HttpResponse:
    # One query for the list, and none for a reader without papers (the link's query says so).
    papers = selectors.your_papers(subscriber) if getattr(subscriber, "has_liked_papers", True) else selectors.NO_PAPERS
    liked_ids = {row.arxiv_id for row in (*papers.rows, *papers.not_found)}
    form = PreferencesForm(initial=_preferences_of(subscriber), liked_ids=liked_ids)
    status = 200
    if request.method == "POST":
        data, readable = form_data(request)
        action = data.get("action", "save")
        if action == "pause":
            services.subscriber_pause(subscriber=subscriber)
            return redirect(f"{request.path}?done=paused")
        if action == "resume":
            services.subscriber_resume(subscriber=subscriber)
            return redirect(f"{request.path}?done=resumed")
        if action == "unsubscribe":
            services.subscriber_unsubscribe(subscriber=subscriber)
            return redirect(f"{request.path}?done=unsubscribed")
        if action == "reset-feed":
            services.subscriber_reset_feed(subscriber=subscriber)
            return redirect(f"{request.path}?done=feed-reset#feed")
        if action == "remove-paper":
            return redirect(f"{request.path}?done={_remove_paper(subscriber, data.get('paper', ''))}#papers")
        form = PreferencesForm(data, liked_ids=liked_ids)
        valid = form.is_valid()
        if not readable:
            refuse_unreadable(form)
        elif valid:
            try:
                # The papers first: past the limit (another tab added some meanwhile) nothing is saved.
                if form.liked_papers():
                    liked.liked_papers_add(
                        subscriber=subscriber, arxiv_ids=form.liked_papers(), source=LikedPaper.Source.TYPED
                    )
            except liked.TooManyLikedPapers as exc:
                form.add_error(PreferencesForm.LIKED_FIELD, str(exc))
            else:
                services.subscriber_update(subscriber=subscriber, preferences=form.preferences())
                done = "papers-added#papers" if form.liked_papers() else "saved"
                return redirect(f"{request.path}?done={done}")
        status = 400
    context = {
        "subscriber": subscriber,
        "form": form,
        "done": DONE_MESSAGES.get(request.GET.get("done", "")),
        "suggestions": selectors.topic_suggestions(),
        "time_zone_options": time_zone_options(),
        "token": token,
        "history": sending.history(subscriber),
        "archive_days": settings.DIGEST_ARCHIVE_DAYS,
        "feed_url": feed_url(subscriber),
        "your_papers": papers,
    }
    return render(request, "digest/manage.html", context, status=status)


def _remove_paper(subscriber: Subscriber, row_id: str) -> str:
    """The remove button of one of "Your papers"; the done message's key."""
    if not row_id.isdigit():
        return "paper-removed"
    follows = subscriber.topics or subscriber.authors or subscriber.organizations
    if not follows and not subscriber.liked_papers.exclude(pk=int(row_id)).exists():
        return "keep-one"
    liked.liked_papers_remove(subscriber=subscriber, row_ids=[int(row_id)])
    return "paper-removed"


def _preferences_of(subscriber: Subscriber) -> dict[str, Any]:
    return {name: getattr(subscriber, name) for name in PreferencesForm.subscriber_fields()}


@never_cache
@require_GET
@signed_link("manage")
def my_data(request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]) -> HttpResponse:
    response = JsonResponse(
        selectors.subscriber_data(subscriber=subscriber),
        json_dumps_params={"indent": 2, "ensure_ascii": False},
    )
    response["Content-Disposition"] = 'attachment; filename="paper-digest-my-data.json"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@signed_link("manage")
def delete(request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]) -> HttpResponse:
    """GET asks "are you sure?"; the POST erases."""
    if request.method == "POST":
        services.subscriber_delete(subscriber=subscriber)
        return render(request, "digest/delete.html", {"deleted": True})
    return render(request, "digest/delete.html", {"deleted": False, "token": token})


@csrf_exempt  # RFC 8058: the mailbox provider's POST carries no cookie and no CSRF token
@never_cache
@require_http_methods(["GET", "POST"])
@signed_link("unsubscribe")
def unsubscribe(request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]) -> HttpResponse:
    """One-click unsubscribe. The signed token is the authenticator; GET never changes
    anything (link scanners fetch URLs), POST unsubscribes, answers 200, and is idempotent."""
    done = request.method == "POST"
    if done:
        services.subscriber_unsubscribe(subscriber=subscriber)
    # No manage link here: an unsubscribe URL travels further than the person (forwarded
    # emails, the mailto mailbox), so the way to the preferences is a link mailed to them.
    return render(request, "digest/unsubscribe.html", {"done": done, "token": token})


@csrf_exempt  # no cookie on this page (see unsubscribe); the signed token is the authenticator
@never_cache
@require_POST
@signed_link("unsubscribe")
def unsubscribe_manage_link(
    request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]
) -> HttpResponse:
    """Mail the address a fresh link to its preferences (to resubscribe or change them)."""
    outcome = services.manage_link_request(subscriber=subscriber)
    context = {
        "done": subscriber.status == Subscriber.Status.UNSUBSCRIBED,
        "token": token,
        "link": outcome,
        "mails_per_day": services.MAILS_PER_ADDRESS_PER_DAY,
    }
    return render(request, "digest/unsubscribe.html", context)


def healthz(request: HttpRequest) -> JsonResponse:
    report = selectors.health()
    return JsonResponse(report, status=200 if report["ok"] else 503)


@csrf_exempt  # the signed token is the authenticator, as for one-click unsubscribe
@never_cache
@require_http_methods(["GET", "POST"])
def feedback(request: HttpRequest, token: str) -> HttpResponse:
    """ "More / less like this" from a digest. GET shows the choice and, with JavaScript,
    submits it at once (one click); the POST records it. Link scanners only GET. The
    token vouches for the subscriber, paper and signal together (digest/tokens.py)."""
    data = request.POST if request.method == "POST" else request.GET
    arxiv_id = data.get("p", "")[:32]
    try:
        signal = int(data.get("v", ""))
    except ValueError:
        signal = 0
    try:
        subscriber = read_feedback_token(token, arxiv_id=arxiv_id, signal=signal)
        if request.method == "POST":
            paper = services.feedback_record(subscriber=subscriber, arxiv_id=arxiv_id, signal=signal).paper
        else:
            paper = services.feedback_paper(arxiv_id=arxiv_id, signal=signal)
    except (BadToken, services.InvalidFeedback) as exc:
        return _bad_link(request, str(exc))
    context = {
        "paper": paper,
        "signal": signal,
        "done": request.method == "POST",
        "manage_path": _manage_path(subscriber),
    }
    return render(request, "digest/feedback.html", context)


@never_cache
@require_GET
@signed_link("webview")
def webview(request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]) -> HttpResponse:
    """The digest as it was sent, in the browser ("Read it in your browser")."""
    try:
        day = date.fromisoformat(str(extra.get("d", "")))
    except ValueError:
        return _bad_link(request, "this link is not valid")
    try:
        html = sending.sent_digest_html(subscriber=subscriber, day=day)
    except sending.NotInArchive as exc:
        return render(request, "digest/bad_link.html", {"error": str(exc)}, status=404)
    response = HttpResponse(html)
    response["X-Robots-Tag"] = "noindex"
    return response


# Shared links and search engines land on day pages; they change only when a scrape,
# pin or hide does, so a few minutes in the shared cache (and in proxies) is plenty.
DAY_PAGE_SECONDS = 300


@require_GET
@cache_page(DAY_PAGE_SECONDS)
def day(request: HttpRequest, day: str) -> HttpResponse:
    """The public page of one Hugging Face list: no subscriber data, so it may be cached."""
    try:
        listed = date.fromisoformat(day)
        page = int(request.GET.get("page", "1"))
    except ValueError:
        listed, page = None, 0
    found = selectors.day_page(day=listed, page=page) if listed and len(day) == 10 else None
    if found is None:
        return render(request, "digest/day.html", {"missing": day[:10]}, status=404)
    return render(request, "digest/day.html", {"listing": found})


@require_safe
@signed_link("feed")
def feed(request: HttpRequest, *, token: str, subscriber: Subscriber, extra: dict[str, Any]) -> HttpResponse:
    """The personal Atom feed. Readers poll it every few minutes, so a conditional GET
    that matches answers 304 after two queries; a full answer costs three. HEAD (feed
    checkers, some readers) answers as GET does, headers and all, without the body."""
    rows = sending.feed_rows(subscriber)
    version = sending.feed_version(subscriber, rows)
    # Whole seconds, as the Last-Modified header carries them.
    last_modified = int(version.last_modified.timestamp()) if version.last_modified else None
    unchanged = get_conditional_response(request, etag=version.etag, last_modified=last_modified)
    if unchanged is not None:
        return unchanged
    body = sending.atom_feed(subscriber, sending.feed_entries(rows), feed_url=request.build_absolute_uri())
    # A browser (it asks for HTML) is given the same document as generic XML, which it
    # renders with the feed's stylesheet; as application/atom+xml it shows raw text.
    browser = "text/html" in request.headers.get("Accept", "")
    content_type = "application/xml" if browser else "application/atom+xml"
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Vary"] = "Accept"
    response["ETag"] = version.etag
    if last_modified is not None:
        response["Last-Modified"] = http_date(last_modified)
    # Private: the feed is personal; readers revalidate with the ETag.
    response["Cache-Control"] = "private, max-age=300"
    response["X-Robots-Tag"] = "noindex"
    if request.method == "HEAD":
        response["Content-Length"] = str(len(body))
        response.content = b""
    return response
