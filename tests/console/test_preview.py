"""Previewing any subscriber's digest in the console, exactly as it is sent, and retrying deliveries."""

import email
import email.policy
import html as html_lib
import re
from datetime import date
from email.message import EmailMessage
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.core import signing
from django.core.management import call_command

from digest.models import Delivery, Subscriber
from papers import services as paper_services
from papers.models import Paper
from tests.console.conftest import console
from tests.factories import DeliveryFactory, SubscriberFactory

pytestmark = pytest.mark.django_db

# The saved list is of 2025-11-07, so the digest dated the day after draws from it.
DIGEST_DAY = date(2025, 11, 8)


@pytest.fixture(autouse=True)
def _one_signing_second(monkeypatch) -> None:
    """Links in a digest are signed with a timestamp: a render a second later differs in
    them alone, so both renders being compared sign in the same (frozen) second."""
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(1_762_560_000))


@pytest.fixture
def reader(hf_papers: None, settings) -> Subscriber:
    # The outbox transport does not create its folder when sending a single message.
    Path(settings.OUTBOX_DIR).mkdir(parents=True, exist_ok=True)
    return SubscriberFactory(email="ada@example.org", topics=["reinforcement learning"], time_zone="UTC")


def outbox(settings) -> list[EmailMessage]:
    files = sorted(Path(settings.OUTBOX_DIR).glob("*.eml"))
    return [email.message_from_bytes(f.read_bytes(), policy=email.policy.default) for f in files]


def parts(message: EmailMessage) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def page_preview(client, subscriber: Subscriber, day: date) -> tuple[str, str, str]:
    """(subject, text, html) as the preview page shows them."""
    page = client.get(console("preview/"), {"subscriber": subscriber.email, "day": day.isoformat()})
    assert page.status_code == 200
    content = page.content.decode()
    subject = html_lib.unescape(re.search(r'<h2 id="preview-subject">Subject: (.*?)</h2>', content).group(1))
    text = html_lib.unescape(
        re.search(r'<pre class="preview-text" id="preview-text">(.*?)</pre>', content, re.S).group(1)
    )
    srcdoc = html_lib.unescape(re.search(r'srcdoc="(.*?)"', content, re.S).group(1))
    return subject, text, srcdoc


def test_it_shows_the_digest_exactly_as_senddigests_sends_it(curator_client, reader, settings) -> None:
    subject, text, html = page_preview(curator_client, reader, DIGEST_DAY)
    standalone = curator_client.get(console("preview/html/"), {"subscriber": reader.pk, "day": "2025-11-08"})

    call_command(
        "senddigests",
        "--to",
        "check@example.org",
        "--subscriber",
        reader.email,
        "--date",
        "2025-11-08",
        stdout=StringIO(),
    )

    [sent] = outbox(settings)
    sent_text, sent_html = parts(sent)
    assert sent["To"] == "check@example.org"
    assert sent["Subject"] == subject
    assert "Scaling Agent Learning via Experience Synthesis" in html
    assert html == sent_html
    assert standalone.content.decode() == sent_html
    assert text == sent_text


def test_it_shows_a_pinned_paper_with_the_curators_note(curator_client, reader, curator) -> None:
    paper = Paper.objects.get(title__startswith="Learning Vision-Driven Reactive Soccer Skills")
    paper_services.papers_pin(paper_ids=[paper.pk], day=DIGEST_DAY, note="Robots playing football", by=curator)

    _, text, html = page_preview(curator_client, reader, DIGEST_DAY)

    assert paper.title in html and paper.title in text
    assert "Robots playing football" in html


def test_it_sends_the_preview_to_the_curator_and_leaves_the_ledger_alone(
    curator_client, curator, reader, settings
) -> None:
    _, text, html = page_preview(curator_client, reader, DIGEST_DAY)

    response = curator_client.post(console("preview/"), {"subscriber": reader.pk, "day": "2025-11-08"})

    assert response.status_code == 302
    assert response["Location"] == console(f"preview/?subscriber={reader.pk}&day=2025-11-08")
    [sent] = outbox(settings)
    assert sent["To"] == curator.email
    assert parts(sent) == (text, html)
    assert not Delivery.objects.exists()
    assert [str(m) for m in get_messages(response.wsgi_request)] == [f"Preview sent to {curator.email}."]


def test_it_says_why_there_is_nothing_to_preview(curator_client) -> None:
    subscriber = SubscriberFactory()

    page = curator_client.get(console("preview/"), {"subscriber": subscriber.email, "day": "2025-11-08"})

    assert "the papers of 2025-11-07 are not ready: no good scrape of that day yet" in page.content.decode()
    assert "srcdoc" not in page.content.decode()


def test_it_explains_a_bad_subscriber_or_date(curator_client) -> None:
    page = curator_client.get(console("preview/"), {"subscriber": "nobody@example.org", "day": "yesterday"})

    content = html_lib.unescape(page.content.decode())
    assert "No subscriber with the address or id 'nobody@example.org'." in content
    assert "Enter a valid date." in content


def test_it_refuses_to_send_without_an_address(curator_client, curator, reader, settings) -> None:
    curator.email = ""
    curator.save()

    response = curator_client.post(console("preview/"), {"subscriber": reader.pk, "day": "2025-11-08"}, follow=True)

    assert "Your account has no email address to send the preview to." in response.content.decode()
    assert outbox(settings) == []


def test_it_keeps_previews_from_staff_without_the_role(client, django_user_model, reader) -> None:
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)

    assert client.get(console("preview/"), {"subscriber": reader.pk, "day": "2025-11-08"}).status_code == 403
    assert client.post(console("preview/"), {"subscriber": reader.pk, "day": "2025-11-08"}).status_code == 403


# --- deliveries ----------------------------------------------------------------------


def test_it_lists_deliveries_in_fixed_queries(curator_client, django_assert_max_num_queries) -> None:
    DeliveryFactory.create_batch(50, status="failed", error="451 try later")
    curator_client.get(console("digest/delivery/"))

    with django_assert_max_num_queries(8):
        response = curator_client.get(console("digest/delivery/"), {"digest_date__year": "2025"})

    assert response.content.decode().count("451 try later") == 50


def test_it_filters_deliveries_by_day_status_and_error(curator_client) -> None:
    DeliveryFactory(subscriber__email="ann@example.org", digest_date=date(2025, 11, 7), status="failed", error="550 no")
    DeliveryFactory(subscriber__email="bob@example.org", digest_date=date(2025, 11, 8), status="sent")

    def emails(**params: str) -> list[str]:
        html = curator_client.get(console("digest/delivery/"), params).content.decode()
        return [e for e in ("ann@example.org", "bob@example.org") if e in html]

    assert emails(digest_date__day="8", digest_date__month="11", digest_date__year="2025") == ["bob@example.org"]
    assert emails(status__exact="failed") == ["ann@example.org"]
    assert emails(error="550") == ["ann@example.org"]
    assert emails(has_error="no") == ["bob@example.org"]


def test_it_retries_failed_bounced_and_stuck_deliveries_only(curator_client, run_action) -> None:
    failed = DeliveryFactory(status="failed", error="451", attempts=3)
    stuck = DeliveryFactory(status="stuck")
    sent = DeliveryFactory(status="sent")

    response = run_action(curator_client, "digest/delivery/", "retry_failed", [failed.pk, stuck.pk, sent.pk])

    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses == {failed.pk: "pending", stuck.pk: "pending", sent.pk: "sent"}
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "2 delivery(ies) back to pending and queued for sending. 1 not failed, bounced or stuck: left alone."
    ]


def test_it_keeps_retries_from_staff_without_the_role(client, django_user_model, run_action) -> None:
    staff = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    client.force_login(staff)
    failed = DeliveryFactory(status="failed")

    run_action(client, "digest/delivery/", "retry_failed", [failed.pk])

    assert Delivery.objects.get().status == "failed"
