"""The WSGI application gunicorn serves."""

import os

from django.core.wsgi import get_wsgi_application

from digest.startup import configured, warn

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

application = configured(get_wsgi_application)


def _webhooks_missing() -> str:
    from digest.webhooks import missing_credential

    return missing_credential()


warn(_webhooks_missing())
