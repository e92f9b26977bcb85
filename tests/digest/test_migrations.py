"""Data migrations on rows written before them."""

from datetime import UTC, date, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from digest.models import email_hash

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("digest", "0003_curator_group"), ("papers", "0001_initial")]
NORMALIZE = [("digest", "0004_normalize_addresses")]


def migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def old_schema():
    """The database as it was before 0004; put back to the latest migration afterwards."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    yield migrate(BEFORE)
    migrate(latest)


def old_hash(address: str) -> str:
    """How 0003's code hashed an address for the suppression list."""
    import hashlib
    import hmac

    from django.conf import settings

    return hmac.new(settings.SECRET_KEY.encode(), address.strip().lower().encode(), hashlib.sha256).hexdigest()


def test_it_merges_look_alike_rows_into_one_normalized_subscriber_without_crashing(old_schema) -> None:
    """Two rows that normalize to one address: the active, earliest confirmed one keeps it and
    gains the other's consent records and ledger; a suppression moves to the new spelling."""
    apps = old_schema
    Subscriber = apps.get_model("digest", "Subscriber")
    ConsentRecord = apps.get_model("digest", "ConsentRecord")
    Delivery = apps.get_model("digest", "Delivery")
    SentPaper = apps.get_model("digest", "SentPaper")
    Suppression = apps.get_model("digest", "Suppression")
    Paper = apps.get_model("papers", "Paper")
    published = datetime(2025, 11, 6, tzinfo=UTC)
    first, second, third = (
        Paper.objects.create(
            arxiv_id=f"2511.0000{n}", title=f"P{n}", published_at=published, featured_on=date(2025, 11, 7)
        )
        for n in (1, 2, 3)
    )
    confirmed = datetime(2025, 10, 1, tzinfo=UTC)
    plain = Subscriber.objects.create(email="cap@example.org", status="active", confirmed_at=confirmed, key="a" * 32)
    fullwidth = Subscriber.objects.create(email="cap@\uff45xample.org", status="pending", key="b" * 32)
    capital = Subscriber.objects.create(email="CAP@EXAMPLE.ORG", status="active", key="c" * 32)
    alone = Subscriber.objects.create(email="ada@m\u00fcnchen.de", status="active", key="d" * 32)
    ConsentRecord.objects.create(subscriber=fullwidth, form_version="signup-old")
    shared_day = Delivery.objects.create(subscriber=plain, digest_date=date(2025, 11, 7), status="sent")
    other_day = Delivery.objects.create(subscriber=capital, digest_date=date(2025, 11, 7), status="sent")
    later_day = Delivery.objects.create(subscriber=capital, digest_date=date(2025, 11, 8), status="sent")
    SentPaper.objects.create(subscriber=plain, paper=first, delivery=shared_day, sent_on=date(2025, 11, 7))
    SentPaper.objects.create(subscriber=capital, paper=first, delivery=other_day, sent_on=date(2025, 11, 7))
    SentPaper.objects.create(subscriber=capital, paper=second, delivery=other_day, sent_on=date(2025, 11, 7))
    SentPaper.objects.create(subscriber=capital, paper=third, delivery=later_day, sent_on=date(2025, 11, 8))
    Suppression.objects.create(email_hash=old_hash("ada@m\u00fcnchen.de"), reason="bounced")

    apps = migrate(NORMALIZE)

    Subscriber = apps.get_model("digest", "Subscriber")
    rows = dict(Subscriber.objects.values_list("email", "pk"))
    assert rows == {"cap@example.org": plain.pk, "ada@xn--mnchen-3ya.de": alone.pk}
    ConsentRecord = apps.get_model("digest", "ConsentRecord")
    assert list(ConsentRecord.objects.values_list("subscriber_id", flat=True)) == [plain.pk]
    SentPaper = apps.get_model("digest", "SentPaper")
    assert sorted(SentPaper.objects.filter(subscriber_id=plain.pk).values_list("paper__arxiv_id", flat=True)) == [
        "2511.00001",
        "2511.00002",
        "2511.00003",
    ]
    Delivery = apps.get_model("digest", "Delivery")
    assert sorted(Delivery.objects.values_list("subscriber_id", "digest_date")) == [
        (plain.pk, date(2025, 11, 7)),
        (plain.pk, date(2025, 11, 8)),
    ]
    Suppression = apps.get_model("digest", "Suppression")
    assert Suppression.objects.filter(email_hash=email_hash("ada@M\u00fcnchen.de"), reason="bounced").exists()


def test_it_unsubscribes_a_merged_mailbox_that_a_curator_suppressed_under_another_spelling(old_schema) -> None:
    Subscriber = old_schema.get_model("digest", "Subscriber")
    Suppression = old_schema.get_model("digest", "Suppression")
    Subscriber.objects.create(email="cap@example.org", status="active", key="a" * 32)
    Subscriber.objects.create(email="cap@\uff45xample.org", status="unsubscribed", key="b" * 32)
    Suppression.objects.create(email_hash=old_hash("cap@\uff45xample.org"), reason="curator")

    apps = migrate(NORMALIZE)

    [(email, status)] = apps.get_model("digest", "Subscriber").objects.values_list("email", "status")
    assert (email, status) == ("cap@example.org", "unsubscribed")
    assert apps.get_model("digest", "Suppression").objects.filter(email_hash=email_hash("cap@example.org")).exists()


BEFORE_QUOTED = [("digest", "0011_rejected_reports")]
MERGE_QUOTED = [("digest", "0012_quoted_addresses")]


@pytest.fixture
def schema_0011():
    """The database before 0012; put back to the latest migration afterwards."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    yield migrate(BEFORE_QUOTED)
    migrate(latest)


def test_it_merges_rows_stored_under_a_quoted_spelling_and_keeps_their_suppression(schema_0011) -> None:
    """`"sup"@example.org` was a second subscriber beside sup@example.org, past its
    complaint suppression; after 0012 the mailbox is one unsubscribed, suppressed row that
    kept the quoted row's liked paper."""
    Subscriber = schema_0011.get_model("digest", "Subscriber")
    Suppression = schema_0011.get_model("digest", "Suppression")
    LikedPaper = schema_0011.get_model("digest", "LikedPaper")
    plain = Subscriber.objects.create(email="sup@example.org", status="active", key="a" * 32)
    quoted = Subscriber.objects.create(email='"sup"@example.org', status="pending", key="b" * 32)
    escaped = Subscriber.objects.create(email='"s\\up"@example.org', status="active", key="c" * 32)
    other = Subscriber.objects.create(email="ada@example.org", status="active", key="d" * 32)
    LikedPaper.objects.create(subscriber=quoted, arxiv_id="2511.00001", source="typed")
    Suppression.objects.create(email_hash=email_hash('"s\\up"@example.org'.lower()), reason="complaint")

    apps = migrate(MERGE_QUOTED)

    Subscriber = apps.get_model("digest", "Subscriber")
    rows = {s.email: (s.pk, s.status) for s in Subscriber.objects.all()}
    assert rows == {"sup@example.org": (plain.pk, "unsubscribed"), "ada@example.org": (other.pk, "active")}
    assert not Subscriber.objects.filter(pk__in=[quoted.pk, escaped.pk]).exists()
    LikedPaper = apps.get_model("digest", "LikedPaper")
    assert list(LikedPaper.objects.values_list("subscriber_id", "arxiv_id")) == [(plain.pk, "2511.00001")]
    Suppression = apps.get_model("digest", "Suppression")
    assert Suppression.objects.filter(email_hash=email_hash("sup@example.org"), reason="complaint").exists()
