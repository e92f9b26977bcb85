from django.apps import AppConfig


class PapersConfig(AppConfig):
    name = "papers"
    verbose_name = "Papers"

    def ready(self) -> None:
        # Register the tasks in every process, not only in workers: the console's "scrape
        # now" enqueues papers.tasks.scrape_day by name (papers/services.py).
        import papers.tasks  # noqa: F401
