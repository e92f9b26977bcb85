"""``manage.py senddigests``: every due digest of a date now, through the same services."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from digest.models import Delivery, SentPaper, Subscriber
from papers.models import Paper
from tests.digest.conftest import DIGEST_DAY
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

DATE = DIGEST_DAY.isoformat()


def run(*args: str) -> str:
    out, err = StringIO(), StringIO()
    call_command("senddigests", *args, stdout=out, stderr=err)
    return out.getvalue()


@pytest.fixture
def readers(ready_day) -> dict[str, Subscriber]:
    return {
        # Send hours that have not come yet: the command ignores them.
        "video": SubscriberFactory(email="ann@example.org", topics=["video generation"], send_hour=23),
        "trending": SubscriberFactory(email="bob@example.org", topics=[], max_papers=3, time_zone="Pacific/Kiritimati"),
        "nothing": SubscriberFactory(email="cy@example.org", topics=["quantum chemistry"]),
        "paused": SubscriberFactory(email="di@example.org", topics=[], status=Subscriber.Status.PAUSED),
    }


def test_sends_every_due_digest_of_the_date_and_summarises(smtp_server, readers):
    output = run("--date", DATE)

    assert sorted(m.rcpt_tos[0] for m in smtp_server.messages) == ["ann@example.org", "bob@example.org"]
    assert "digests of 2025-11-08: 3 planned now, 2 sent, 1 skipped" in output
    statuses = dict(Delivery.objects.values_list("subscriber__email", "status"))
    assert statuses == {"ann@example.org": "sent", "bob@example.org": "sent", "cy@example.org": "skipped"}
    video = Paper.objects.get(arxiv_id="2511.04570")
    assert video.title in smtp_server.to("ann@example.org")[0].message()["Subject"]


def test_a_second_run_sends_nothing_new(smtp_server, readers):
    run("--date", DATE)
    ledger = SentPaper.objects.count()

    output = run("--date", DATE)

    assert len(smtp_server.messages) == 2
    assert "0 planned now, 0 sent" in output
    assert SentPaper.objects.count() == ledger
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 2


def test_dry_run_sends_nothing_and_writes_nothing(smtp_server, readers):
    output = run("--date", DATE, "--dry-run")

    assert "2 digests would be sent, 1 skipped" in output
    assert smtp_server.messages == []
    assert not Delivery.objects.exists()
    assert not SentPaper.objects.exists()


def test_to_sends_one_subscribers_digest_to_one_address_only(smtp_server, readers):
    output = run("--date", DATE, "--to", "curator@example.org", "--subscriber", "ann@example.org")

    [received] = smtp_server.messages
    assert received.rcpt_tos == ["curator@example.org"]
    assert str(received.message()["To"]) == "curator@example.org"
    assert Paper.objects.get(arxiv_id="2511.04570").title in str(received.message()["Subject"])
    assert "curator@example.org" in output
    # Outside the ledger: ann's own digest is still to come.
    assert not Delivery.objects.exists()
    assert not SentPaper.objects.exists()


def test_to_alone_sends_that_subscribers_digest_to_them(smtp_server, readers):
    run("--date", DATE, "--to", "bob@example.org")

    assert [m.rcpt_tos for m in smtp_server.messages] == [["bob@example.org"]]


def test_a_date_whose_papers_are_not_ready_is_one_readable_error(smtp_server, readers):
    with pytest.raises(CommandError) as error:
        run("--date", "2025-11-10")

    message = str(error.value)
    assert "\n" not in message
    assert "2025-11-09" in message and "not ready" in message
    assert smtp_server.messages == []
    assert not Delivery.objects.exists()


@pytest.mark.parametrize("value", ["2025-13-01", "08/11/2025", "tomorrow"])
def test_a_bad_date_is_refused(value, smtp_server, readers):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        run("--date", value)
    assert smtp_server.messages == []


def test_digests_not_sent_make_the_command_fail_after_its_summary(smtp_server, readers, settings):
    settings.DIGEST_MAX_ATTEMPTS = 3
    smtp_server.reply("bob@example.org", "451 4.3.0 Try later")
    out = StringIO()

    with pytest.raises(CommandError, match="1 digests were not sent"):
        call_command("senddigests", "--date", DATE, stdout=out, stderr=StringIO())

    assert "1 sent" in out.getvalue()
    assert "1 left pending" in out.getvalue()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ann@example.org"]]
    assert Delivery.objects.get(subscriber=readers["trending"]).status == Delivery.Status.PENDING


def test_a_paused_sender_refuses_to_run(smtp_server, readers):
    from digest import sending

    sending.pause_sending("test")

    with pytest.raises(CommandError, match="paused"):
        run("--date", DATE)
    assert smtp_server.messages == []
