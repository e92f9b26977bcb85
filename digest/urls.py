from django.conf import settings
from django.contrib import admin
from django.urls import path

from digest import views, webhooks
from digest.tokens import FEED_SUFFIX, PATHS

urlpatterns = [
    path("", views.home, name="home"),
    path("subscribed", views.subscribed, name="subscribed"),
    path("preview", views.preview, name="preview"),
    path(f"{PATHS['confirm']}<str:token>", views.confirm, name="confirm"),
    path(f"{PATHS['confirm']}<str:token>/manage-link", views.confirm_manage_link, name="confirm-manage-link"),
    path(f"{PATHS['manage']}<str:token>", views.manage, name="manage"),
    path(f"{PATHS['manage']}<str:token>/data.json", views.my_data, name="my-data"),
    path(f"{PATHS['manage']}<str:token>/delete", views.delete, name="delete"),
    path(f"{PATHS['unsubscribe']}<str:token>", views.unsubscribe, name="unsubscribe"),
    path(
        f"{PATHS['unsubscribe']}<str:token>/manage-link", views.unsubscribe_manage_link, name="unsubscribe-manage-link"
    ),
    path(f"{PATHS['feedback']}<str:token>", views.feedback, name="feedback"),
    path(f"{PATHS['webview']}<str:token>", views.webview, name="webview"),
    path(f"{PATHS['feed']}<str:token>{FEED_SUFFIX}", views.feed, name="feed"),
    path("day/<str:day>", views.day, name="day"),
    path("healthz", views.healthz, name="healthz"),
    *webhooks.urlpatterns,
    path(settings.ADMIN_URL, admin.site.urls),
]
