from celery import shared_task

from papers import services


@shared_task
def scrape_daily() -> list[str]:
    return [run.summary() for run in services.scrape_schedule_run()]


@shared_task
def scrape_trending() -> str:
    return services.scrape_trending().summary()


@shared_task
def scrape_day(day: str) -> str:
    from datetime import date

    return services.scrape_day(day=date.fromisoformat(day)).summary()
