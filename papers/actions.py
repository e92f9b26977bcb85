"""The intermediate page of an admin action, shared by both apps' admins (papers is the app both may import)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse


def action_form(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    *,
    action: str,
    title: str,
    submit: str,
    form: forms.Form | None = None,
    warning: str = "",
) -> TemplateResponse:
    """The intermediate page of an admin action: the chosen rows, an optional form, and a
    button that posts the action again with `apply` set."""
    opts = modeladmin.model._meta
    objects: list[Model] = list(queryset)
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": opts,
        "objects": objects,
        "form": form,
        "media": modeladmin.media + (form.media if form else forms.Media()),
        "action": action,
        "submit": submit,
        "warning": warning,
    }
    return TemplateResponse(request, "admin/console/action_form.html", context)
