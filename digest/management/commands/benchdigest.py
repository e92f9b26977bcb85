"""Measure the digest pipeline end to end: plan, rank, render, send, record.

Runs in a throwaway database next to the configured one (``bench_<pid>`` on
PostgreSQL, a file under var/ on SQLite), with the 412 real papers of November 2025
(shipped in digest/bench/), synthetic
subscribers whose topics come from those papers' keywords, and SMTP to a local sink on
127.0.0.1 in its own process. Then the same pipeline with naive per-email premailer
inlining, for the ratio. Prints its figures; asserts nothing about speed.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing
import os
import random
import resource
import time
from datetime import date, timedelta
from importlib import resources

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone

from digest import sending
from digest.bench.rank import rank_only
from digest.bench.sink import Sink
from digest.mail import Mailer
from digest.models import Delivery, Subscriber
from digest.ranking.evaluation import pool_docs
from digest.rendering import NaiveRenderer
from papers.feed import FeedError, parse_api_items
from papers.models import Paper, ScrapeRun
from papers.services import paper_fields

DAY = date(2025, 11, 8)  # the digest date; its papers are those of the 7th
MONTH = resources.files("digest.bench") / "daily_papers_month-2025-11.json.gz"
COMMON_TOPICS = [
    "large language models", "diffusion", "reinforcement learning", "speculative decoding", "agents",
    "vision language models", "mixture of experts", "retrieval augmented generation", "video generation",
    "reasoning", "robotics", "speech recognition", "quantization", "benchmark", "multimodal",
]  # fmt: skip


def _send_share(batches: list[list[int]], cache: sending.Editions, results) -> None:
    timings: dict[str, float] = {}
    total = sending.BatchReport()
    try:
        with Mailer() as mailer:
            for batch in batches:
                total.add(sending.send_batch(batch, mailer=mailer, timings=timings, cache=cache))
    finally:
        connection.close()
        results.put((timings, total))


def _rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # the largest child (not the sink: alive)
    return max(own, children) / 1024


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the sending processes; the SMTP
    sink is still running, so it is not counted)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Command(BaseCommand):
    help = "Benchmark planning, ranking, rendering and sending digests; prints figures per stage."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--subscribers", type=int, required=True, help="synthetic subscribers to send to")
        parser.add_argument("--papers", type=int, default=40, help="papers in the day's list (default 40)")
        parser.add_argument("--naive", type=int, default=300, help="subscribers for the naive run (default 300)")
        parser.add_argument("--batch-size", type=int, default=settings.DIGEST_BATCH_SIZE)
        parser.add_argument("--processes", type=int, default=1, help="sending processes, like a worker's concurrency")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--rank-only", action="store_true", help="time the rank stage alone, without a database")
        parser.add_argument(
            "--dkim", action="store_true", help="DKIM-sign every digest with a throwaway 2048-bit key (stage 'sign')"
        )

    def handle(self, *args, **options) -> None:
        if options["subscribers"] < 1 or options["papers"] < 1 or options["processes"] < 1:
            raise CommandError("--subscribers, --papers and --processes must be at least 1")
        self.processes = options["processes"]
        try:
            items = parse_api_items(json.loads(gzip.decompress(MONTH.read_bytes())))
        except (OSError, ValueError, FeedError) as exc:
            raise CommandError(f"cannot read the benchmark's papers in {MONTH}: {exc}") from None
        if options["papers"] > len(items):
            raise CommandError(f"--papers may be at most {len(items)} (the papers in {MONTH.name})")
        if options["rank_only"]:
            pool = pool_docs(items)
            for line in rank_only(
                pool,
                day_papers=options["papers"],
                subscribers=options["subscribers"],
                batch_size=options["batch_size"],
                seed=options["seed"],
            ):
                self.stdout.write(line)
            return
        old_name = connection.settings_dict["NAME"]
        test = connection.settings_dict.setdefault("TEST", {})
        test["NAME"] = (
            f"bench_{os.getpid()}"
            if connection.vendor == "postgresql"
            else str(settings.VAR_DIR / f"bench-{os.getpid()}.sqlite3")
        )
        self.stdout.write(f"benchdigest on {connection.vendor}: creating a throwaway database {test['NAME']}")
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        sink = Sink().start()
        dkim_settings = {}
        if options["dkim"]:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            dkim_settings = {
                "DKIM_SELECTOR": "bench",
                "DKIM_DOMAIN": "bench.example.org",
                "DKIM_PRIVATE_KEY": pem.decode(),
            }
        try:
            with override_settings(
                **dkim_settings,
                EMAIL_HOST="127.0.0.1",
                EMAIL_PORT=sink.port,
                EMAIL_USE_TLS=False,
                EMAIL_HOST_USER="",
                DIGEST_SEND_RATE=0,
                DIGEST_BATCH_SIZE=options["batch_size"],
            ):
                self.run(items, sink, **options)
        finally:
            sink.stop()
            connection.creation.destroy_test_db(old_name, verbosity=0)

    # ----------------------------------------------------------------- set-up

    def load_papers(self, items: list, count: int) -> list[Paper]:
        papers, seen = [], set()
        for n, item in enumerate(items):
            if item.arxiv_id in seen:
                continue
            seen.add(item.arxiv_id)
            fields = {**paper_fields(item, fallback_day=DAY), "arxiv_id": item.arxiv_id}
            fields["featured_on"] = DAY - timedelta(days=1) if n < count else DAY - timedelta(days=2 + n % 25)
            papers.append(Paper(**fields))
        Paper.objects.bulk_create(papers, batch_size=500)
        ScrapeRun.objects.create(
            source=ScrapeRun.Source.FILE,
            day=DAY - timedelta(days=1),
            status=ScrapeRun.Status.OK,
            finished_at=timezone.now(),
            papers_seen=count,
        )
        return papers[:count]

    def make_subscribers(self, count: int, papers: list[Paper], rng: random.Random, *, prefix: str) -> list[int]:
        keywords = sorted({k for p in Paper.objects.only("ai_keywords") for k in p.ai_keywords})
        authors = sorted({a for p in papers for a in p.authors})
        start = Subscriber.objects.count()
        rows = []
        for n in range(count):
            chance = rng.random()
            topics = []
            if chance > 0.15:
                topics = rng.sample(COMMON_TOPICS, rng.randint(1, 2)) + rng.sample(keywords, rng.randint(0, 3))
            rows.append(
                Subscriber(
                    email=f"{prefix}{start + n}@bench.example.org",
                    status=Subscriber.Status.ACTIVE,
                    topics=topics,
                    excludes=rng.sample(COMMON_TOPICS, 1) if rng.random() < 0.1 else [],
                    authors=rng.sample(authors, 1) if authors and rng.random() < 0.05 else [],
                    max_papers=rng.randint(5, 15),
                    confirmed_at=timezone.now(),
                )
            )
        created = Subscriber.objects.bulk_create(rows, batch_size=5000)
        return (
            [s.pk for s in created]
            if created and created[0].pk
            else list(Subscriber.objects.filter(email__startswith=prefix).values_list("pk", flat=True))
        )

    # ----------------------------------------------------------------- runs

    def send_all(
        self, ids: list[int], batch_size: int, timings: dict[str, float], cache: sending.Editions
    ) -> sending.BatchReport:
        batches = [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]
        if self.processes > 1:
            return self.send_in_processes(batches, timings, cache)
        total = sending.BatchReport()
        rss = []
        with Mailer() as mailer:
            for batch in batches:
                total.add(sending.send_batch(batch, mailer=mailer, timings=timings, cache=cache))
                rss.append(_rss_mb())
        self.rss_track = rss
        return total

    def send_in_processes(
        self, batches: list[list[int]], timings: dict[str, float], cache: sending.Editions
    ) -> sending.BatchReport:
        """Like workers with --concurrency N: forked processes, each with its own database
        and SMTP connections, take every Nth batch. They inherit the day's edition."""
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        connection.close()  # each child opens its own
        children = [
            context.Process(target=_send_share, args=(batches[k :: self.processes], cache, results), daemon=True)
            for k in range(self.processes)
        ]
        for child in children:
            child.start()
        total = sending.BatchReport()
        for _ in children:
            share_timings, report = results.get()
            total.add(report)
            for stage, seconds in share_timings.items():
                timings[stage] = timings.get(stage, 0.0) + seconds
        for child in children:
            child.join()
            if child.exitcode:
                raise CommandError(f"a sending process exited with {child.exitcode}")
        self.rss_track = []
        return total

    def run(self, items: list, sink: Sink, **options) -> None:
        rng = random.Random(options["seed"])
        n, batch_size = options["subscribers"], options["batch_size"]
        papers = self.load_papers(items, options["papers"])
        self.stdout.write(
            f"{len(items)} real papers ({len(papers)} in the day's list), {n:,} subscribers, batches of {batch_size},"
            f" {self.processes} sending process(es), DKIM {'on (2048-bit RSA)' if options['dkim'] else 'off'}"
        )
        fast_ids = self.make_subscribers(n, papers, rng, prefix="fast")
        cache = sending.Editions()

        timings: dict[str, float] = {}
        wall0, cpu0 = time.perf_counter(), _cpu_seconds()
        plan = sending.plan_date(DAY, subscriber_ids=fast_ids)
        timings["plan"] = time.perf_counter() - wall0
        t = time.perf_counter()
        cache.get(DAY)
        timings["prepare"] = time.perf_counter() - t
        pending = list(
            Delivery.objects.filter(digest_date=DAY, status=Delivery.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        report = self.send_all(pending, batch_size, timings, cache)
        wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
        if sink.messages != report.sent:
            raise CommandError(f"the sink received {sink.messages} messages but {report.sent} were recorded sent")
        sent = max(report.sent, 1)
        rate = report.sent / wall

        self.stdout.write("")
        self.stdout.write(
            f"pre-inlined path: {plan.planned:,} planned, {report.sent:,} sent, {report.skipped:,} skipped"
        )
        self.stdout.write(f"  {'stage':<10}{'seconds':>10}{'ms/digest':>12}")
        for stage in ("plan", "prepare", "rank", "render", "sign", "send", "record"):
            seconds = timings.get(stage, 0.0)
            self.stdout.write(f"  {stage:<10}{seconds:>10.2f}{seconds * 1000 / sent:>12.3f}")
        self.stdout.write(f"  {'total':<10}{wall:>10.2f}{wall * 1000 / sent:>12.3f}")
        self.stdout.write(
            f"  end to end: {rate:,.0f} digests/s, CPU {cpu * 1000 / sent:.2f} ms/digest (the sending processes),"
            f" {sink.bytes / sent / 1024:.1f} KB/message"
        )
        half = self.rss_track[len(self.rss_track) // 2] if self.rss_track else _rss_mb()
        self.stdout.write(f"  peak RSS {_rss_mb():.0f} MB per process (at half-way {half:.0f} MB)")
        if n >= 1000:
            self.stdout.write(f"  100,000 subscribers at this rate: {100_000 / rate / 60:.1f} minutes")

        k = options["naive"]
        if k < 1:
            return
        naive_ids = self.make_subscribers(k, papers, rng, prefix="naive")
        naive_cache = sending.Editions(renderer=NaiveRenderer)
        before = sink.messages
        naive_timings: dict[str, float] = {}
        wall0 = time.perf_counter()
        sending.plan_date(DAY, subscriber_ids=naive_ids)
        pending = list(
            Delivery.objects.filter(digest_date=DAY, status=Delivery.Status.PENDING, subscriber_id__in=naive_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        naive = self.send_all(pending, batch_size, naive_timings, naive_cache)
        naive_wall = time.perf_counter() - wall0
        naive_rate = naive.sent / naive_wall if naive.sent else 0.0
        self.stdout.write("")
        self.stdout.write(
            f"naive path (premailer per email): {naive.sent:,} sent in {naive_wall:.2f} s, {naive_rate:,.0f} digests/s,"
            f" render {naive_timings.get('render', 0) * 1000 / max(naive.sent, 1):.1f} ms/digest"
        )
        if sink.messages - before != naive.sent:
            raise CommandError("the sink's count disagrees with the naive run's sent rows")
        if naive_rate:
            self.stdout.write(f"speed-up of pre-inlining: {rate / naive_rate:.1f}x")
