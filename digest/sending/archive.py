"""Digests as they were sent, rendered again from the papers and reasons recorded with each delivery."""

from __future__ import annotations

from datetime import date

from digest.models import Delivery, Subscriber
from digest.ranking import RankedItem
from digest.rendering import DayRenderer
from digest.sending.editions import reader_for
from papers.models import Paper


def sent_digest_html(*, subscriber: Subscriber, day: date) -> str | None:
    """The HTML of the digest sent to ``subscriber`` for ``day``, from the papers recorded
    with its delivery (so the web view shows what was sent, not today's ranking)."""
    delivery = Delivery.objects.filter(subscriber=subscriber, digest_date=day, status=Delivery.Status.SENT).first()
    if delivery is None or not delivery.papers:
        return None
    entries = [e for e in delivery.papers if isinstance(e, dict) and e.get("arxiv_id")]
    papers = {p.arxiv_id: p for p in Paper.objects.filter(arxiv_id__in=[e["arxiv_id"] for e in entries])}
    picks = [
        RankedItem(paper_id=papers[e["arxiv_id"]].pk, score=0.0, reason=str(e.get("reason", "")))
        for e in entries
        if e["arxiv_id"] in papers
    ]
    if not picks:
        return None
    weekly = subscriber.frequency == Subscriber.Frequency.WEEKLY
    shown = [papers[e["arxiv_id"]] for e in entries if e["arxiv_id"] in papers]
    renderer = DayRenderer(day=day, papers=shown, weekly=weekly)
    return renderer.render(reader_for(subscriber, day), picks).html
