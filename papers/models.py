from django.conf import settings
from django.db import models
from django.utils import timezone


class Paper(models.Model):
    """One paper of the Hugging Face daily list, keyed by its arXiv id."""

    arxiv_id = models.CharField(max_length=32, unique=True)
    title = models.TextField()
    abstract = models.TextField(blank=True)
    authors = models.JSONField(default=list, blank=True)
    organization = models.CharField(max_length=200, blank=True)
    published_at = models.DateTimeField(help_text="When arXiv published it (UTC).")
    # Null for a paper fetched only because a reader named it (never on a daily list): day
    # queries select by date, so such a paper is shared by every reader but in no day's digest.
    featured_on = models.DateField(
        null=True, blank=True, db_index=True, help_text="The Hugging Face daily list it appeared on."
    )
    upvotes = models.PositiveIntegerField(default=0)
    num_comments = models.PositiveIntegerField(default=0)
    github_repo = models.URLField(max_length=500, blank=True)
    github_stars = models.PositiveIntegerField(null=True, blank=True)
    project_page = models.URLField(max_length=500, blank=True)
    thumbnail = models.URLField(max_length=500, blank=True)
    ai_summary = models.TextField(blank=True)
    ai_keywords = models.JSONField(default=list, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    hidden = models.BooleanField(default=False, help_text="Hidden by a curator: never in a digest.")
    first_seen_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-featured_on", "-upvotes"]
        indexes = [models.Index(fields=["featured_on", "-upvotes"], name="paper_day_upvotes")]

    def __str__(self) -> str:
        return f"{self.arxiv_id} {self.title[:60]}"

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    @property
    def hf_url(self) -> str:
        return f"{settings.HF_BASE_URL}/papers/{self.arxiv_id}"

    @property
    def arxiv_url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv_id}"

    @property
    def pdf_url(self) -> str:
        return f"https://arxiv.org/pdf/{self.arxiv_id}"


class ScrapeRun(models.Model):
    """One attempt to bring in a list from the feed, kept whatever its outcome."""

    class Source(models.TextChoices):
        DAILY = "daily", "Daily list"
        TRENDING = "trending", "Trending list"
        FILE = "file", "Saved file"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "OK"
        PARTIAL = "partial", "Partial (day still filling)"
        FAILED = "failed", "Failed"

    source = models.CharField(max_length=16, choices=Source.choices)
    day = models.DateField(null=True, blank=True, db_index=True, help_text="The daily list's date.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    via = models.CharField(max_length=255, blank=True, help_text="api, html or the file's name.")
    url = models.CharField(max_length=1000, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    papers_seen = models.PositiveIntegerField(default=0)
    papers_new = models.PositiveIntegerField(default=0)
    papers_updated = models.PositiveIntegerField(default=0)
    requests = models.PositiveIntegerField(default=0)
    notes = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["source", "day", "status"], name="scrape_source_day_status")]
        permissions = [("run_scrape", "Can start a scrape of a day")]

    def __str__(self) -> str:
        day = f" {self.day}" if self.day else ""
        return f"{self.source}{day} {self.status}"

    def summary(self) -> str:
        """The one line the scrape command prints and curators see in the admin."""
        target = f"{self.source} {self.day}" if self.day else self.source
        line = f"scrape {target}: {self.status}"
        if self.via:
            line += f" via {self.via}"
        line += (
            f", {self.papers_seen} papers ({self.papers_new} new, {self.papers_updated} updated),"
            f" {self.requests} requests"
        )
        if self.error:
            line += f": {self.error}"
        return line


class PaperSnapshot(models.Model):
    """Counts of a paper as one scrape saw them, so ranking can measure momentum."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="snapshots")
    run = models.ForeignKey(ScrapeRun, on_delete=models.CASCADE, related_name="snapshots")
    taken_at = models.DateTimeField(default=timezone.now)
    upvotes = models.PositiveIntegerField()
    num_comments = models.PositiveIntegerField(default=0)
    github_stars = models.PositiveIntegerField(null=True, blank=True)
    trending_rank = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-taken_at"]
        constraints = [models.UniqueConstraint(fields=["paper", "run"], name="snapshot_once_per_run")]
        indexes = [models.Index(fields=["paper", "-taken_at"], name="snapshot_paper_time")]

    def __str__(self) -> str:
        return f"{self.paper_id} {self.upvotes} at {self.taken_at:%Y-%m-%d %H:%M}"


class Pin(models.Model):
    """A curator's pick: shown to every subscriber in that day's digest, with an optional note."""

    paper = models.ForeignKey(Paper, on_delete=models.CASCADE, related_name="pins")
    day = models.DateField(db_index=True)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["paper", "day"], name="pin_once_per_day")]

    def __str__(self) -> str:
        return f"{self.paper.arxiv_id} pinned for {self.day}"
