"""The rank stage alone, for ``benchdigest --rank-only``: synthetic profiles, no database."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta

from digest.ranking import PaperDoc, PaperIndex, Profile

# Phrases people type, beside keywords taken from the papers (as benchdigest's subscribers).
COMMON_TOPICS = (
    "large language models", "diffusion", "reinforcement learning", "speculative decoding", "agents",
    "vision language models", "mixture of experts", "retrieval augmented generation", "video generation",
    "reasoning", "robotics", "speech recognition", "quantization", "benchmark", "multimodal",
)  # fmt: skip


def profiles(papers: Sequence[PaperDoc], count: int, rng: random.Random, first_id: int) -> list[Profile]:
    """Subscribers like benchdigest's: 15 % without topics, some excludes and followed authors."""
    keywords = sorted({k for p in papers for k in p.ai_keywords})
    authors = sorted({a for p in papers for a in p.authors})
    out = []
    for n in range(count):
        topics = []
        if rng.random() > 0.15:
            topics = rng.sample(COMMON_TOPICS, rng.randint(1, 2)) + rng.sample(keywords, rng.randint(0, 3))
        out.append(
            Profile(
                subscriber_id=first_id + n,
                topics=tuple(topics),
                excludes=tuple(rng.sample(COMMON_TOPICS, 1)) if rng.random() < 0.1 else (),
                authors=tuple(rng.sample(authors, 1)) if authors and rng.random() < 0.05 else (),
                max_papers=rng.randint(5, 15),
            )
        )
    return out


def rank_only(pool: Sequence[PaperDoc], *, day_papers: int, subscribers: int, batch_size: int, seed: int) -> list[str]:
    """Rank ``subscribers`` synthetic profiles against the first ``day_papers`` papers of
    ``pool`` (the rest is the month behind them) in batches, as the sending batches do;
    the lines to print."""
    day = date(2025, 11, 7)
    today = [replace(p, day=day) for p in pool[:day_papers]]
    background = [replace(p, day=day - timedelta(days=2 + n % 25)) for n, p in enumerate(pool[day_papers:])]
    rng = random.Random(seed)
    t = time.perf_counter()
    index = PaperIndex(today, background=background)
    build = time.perf_counter() - t
    ranked = made = 0
    rank_seconds = 0.0
    while made < subscribers:
        batch = profiles(pool, min(batch_size, subscribers - made), rng, made)
        made += len(batch)
        t = time.perf_counter()
        ranked += sum(map(len, index.rank(batch).values()))
        rank_seconds += time.perf_counter() - t
    return [
        f"rank only: {subscribers:,} subscribers, {len(today)} papers in the day, {len(background)} behind them,"
        f" batches of {batch_size}",
        f"  index built in {build * 1000:.0f} ms; ranking took {rank_seconds:.2f} s,"
        f" {rank_seconds * 1000 / subscribers:.4f} ms/digest, {ranked / subscribers:.1f} papers per digest",
    ]
