"""Confirmations and manage links go out exactly once, even when a worker dies mid-send."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from digest import services
from digest.models import Subscriber
from tests.factories import ConsentRecordFactory, SubscriberFactory

pytestmark = pytest.mark.django_db


def died_mid_send(subscriber: Subscriber, *, kind: str, ago: timedelta, attempts: int = 1) -> None:
    """What a worker SIGKILLed inside the SMTP conversation leaves: a claim, never recorded."""
    Subscriber.objects.filter(pk=subscriber.pk).update(
        **{f"{kind}_claimed_at": timezone.now() - ago, f"{kind}_attempts": attempts}
    )


def test_it_sends_a_confirmation_whose_worker_died_mid_send_once_the_claim_is_stale(settings) -> None:
    """The sweep used to look only at unstamped rows, so this person never got a link."""
    settings.DIGEST_STUCK_AFTER = 60
    subscriber = ConsentRecordFactory(subscriber__status=Subscriber.Status.PENDING).subscriber
    died_mid_send(subscriber, kind="confirmation", ago=timedelta(seconds=30))

    assert services.confirmations_sweep() == 0  # the claim may still be alive: leave it
    assert not services.confirmation_send(subscriber_id=subscriber.pk)  # a redelivered task waits too

    died_mid_send(subscriber, kind="confirmation", ago=timedelta(seconds=120))
    assert services.confirmations_sweep() == 1
    [message] = mail.outbox
    assert message.to == [subscriber.email]
    subscriber.refresh_from_db()
    assert subscriber.confirmation_sent_at is not None
    assert (subscriber.confirmation_claimed_at, subscriber.confirmation_attempts) == (None, 0)
    assert services.confirmations_sweep() == 0  # recorded: never again


def test_it_retries_an_unknown_confirmation_only_once(settings) -> None:
    """Two workers in a row died mid-conversation: the relay may have taken both, so stop."""
    settings.DIGEST_STUCK_AFTER = 60
    subscriber = ConsentRecordFactory(subscriber__status=Subscriber.Status.PENDING).subscriber
    died_mid_send(subscriber, kind="confirmation", ago=timedelta(hours=1), attempts=2)

    assert services.confirmations_sweep() == 0
    assert mail.outbox == []


def test_it_unclaims_a_confirmation_the_relay_refused(monkeypatch) -> None:
    """A known failure is not an unknown outcome: the next sweep simply tries again."""
    subscriber = ConsentRecordFactory(subscriber__status=Subscriber.Status.PENDING).subscriber

    def refuse(self, *args, **kwargs):
        raise ConnectionRefusedError("relay down")

    with monkeypatch.context() as patch:
        patch.setattr(mail.EmailMultiAlternatives, "send", refuse)
        with pytest.raises(ConnectionRefusedError):
            services.confirmation_send(subscriber_id=subscriber.pk)
    subscriber.refresh_from_db()
    assert (subscriber.confirmation_claimed_at, subscriber.confirmation_attempts) == (None, 0)
    assert services.confirmations_sweep() == 1
    assert len(mail.outbox) == 1


def test_it_sends_a_requested_manage_link_once_however_often_the_task_runs(signup) -> None:
    """A signup of a subscribed address asks for one manage link; a redelivered task sends nothing more."""
    subscriber = SubscriberFactory(status=Subscriber.Status.ACTIVE)
    signup(email=subscriber.email)
    assert [m.subject for m in mail.outbox] == ["Your Paper Digest subscription"]

    assert not services.manage_link_send(subscriber_id=subscriber.pk)
    assert services.confirmations_sweep() == 0
    assert len(mail.outbox) == 1

    signup(email=subscriber.email)  # asked again: a second link is due
    assert len(mail.outbox) == 2


def test_it_sweeps_a_manage_link_whose_worker_died_mid_send(settings) -> None:
    settings.DIGEST_STUCK_AFTER = 60
    subscriber = SubscriberFactory(status=Subscriber.Status.ACTIVE)
    Subscriber.objects.filter(pk=subscriber.pk).update(manage_link_requested_at=timezone.now() - timedelta(minutes=5))
    died_mid_send(subscriber, kind="manage_link", ago=timedelta(minutes=4))

    assert services.confirmations_sweep() == 1
    [message] = mail.outbox
    assert message.to == [subscriber.email]
    assert "/manage/" in message.body
