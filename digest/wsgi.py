"""The WSGI application gunicorn serves."""

import os

from django.core.wsgi import get_wsgi_application

from digest.startup import configured

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "digest.settings")

application = configured(get_wsgi_application)
