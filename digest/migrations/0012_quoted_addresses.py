"""Merge subscribers stored under a quoted spelling of a mailbox (issue 18, item 3).

``"sup"@example.org`` and ``"s\\up"@example.org`` are the mailbox sup@example.org
(RFC 5321 4.1.2), but were stored as new subscribers beside it, which let them past a
curator's or a complaint's suppression. digest.addresses.normalize_email now unquotes
them; this runs 0004's merge again with it, so each mailbox is one row: the keeper is
chosen as there, a suppression of any spelling carries over, and the merged rows'
deliverability events and liked papers move to the keeper too (they came after 0004).
"""

import importlib

from django.db import migrations

normalize_0004 = importlib.import_module("digest.migrations.0004_normalize_addresses")


def merge_into(apps, *, keeper, other) -> None:
    normalize_0004.merge_into(apps, keeper=keeper, other=other)
    DeliveryEvent = apps.get_model("digest", "DeliveryEvent")
    LikedPaper = apps.get_model("digest", "LikedPaper")
    DeliveryEvent.objects.filter(subscriber=other).update(subscriber=keeper)
    liked = set(LikedPaper.objects.filter(subscriber=keeper).values_list("arxiv_id", flat=True))
    LikedPaper.objects.filter(subscriber=other).exclude(arxiv_id__in=liked).update(subscriber=keeper)


def merge_quoted_addresses(apps, schema_editor) -> None:
    normalize_0004.normalize_addresses(apps, schema_editor, merge=merge_into)


class Migration(migrations.Migration):
    dependencies = [("digest", "0011_rejected_reports")]

    operations = [migrations.RunPython(merge_quoted_addresses, migrations.RunPython.noop, elidable=False)]
