"""factory_boy factories for the models tests build by hand."""

from datetime import UTC, date, datetime

import factory

from digest.models import ConsentRecord, Delivery, Subscriber
from digest.ranking import PaperDoc
from papers.models import Paper


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber

    email = factory.Sequence(lambda n: f"reader{n}@example.org")
    status = Subscriber.Status.ACTIVE
    topics = factory.LazyFunction(lambda: ["speculative decoding"])
    time_zone = "Europe/Berlin"


class ConsentRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ConsentRecord

    subscriber = factory.SubFactory(SubscriberFactory, status=Subscriber.Status.PENDING)
    ip = "192.0.2.10"
    user_agent = "Mozilla/5.0 (test)"
    form_version = "signup-test"


class PaperFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Paper

    arxiv_id = factory.Sequence(lambda n: f"2511.{n:05d}")
    title = factory.Sequence(lambda n: f"A paper number {n}")
    abstract = "We study things."
    published_at = factory.LazyFunction(lambda: datetime(2025, 11, 6, 12, tzinfo=UTC))
    featured_on = date(2025, 11, 7)
    upvotes = 10


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    subscriber = factory.SubFactory(SubscriberFactory)
    digest_date = date(2025, 11, 7)
    status = Delivery.Status.SENT


def signup_data(**overrides: str) -> dict[str, str]:
    data = {
        "email": "ada@example.org",
        "topics": "speculative decoding, diffusion",
        "seed_papers": "",
        "excludes": "",
        "authors": "",
        "organizations": "",
        "frequency": "daily",
        "send_hour": "7",
        "time_zone": "Europe/Berlin",
        "max_papers": "10",
        "quiet_day": "nothing",
        "channel": "email",
        "website": "",
        "action": "subscribe",
    }
    data.update(overrides)
    return data


def paper_doc(pk: int, title: str, abstract: str = "", keywords: tuple[str, ...] = (), *, upvotes: int = 1) -> PaperDoc:
    """A paper as the pure ranker sees it, made up for a ranking test (featured 2025-11-07)."""
    return PaperDoc(
        id=pk,
        arxiv_id=f"2511.{pk:05d}",
        title=title,
        abstract=abstract,
        ai_summary="",
        ai_keywords=keywords,
        authors=(),
        organization="",
        upvotes=upvotes,
        day=date(2025, 11, 7),
    )
