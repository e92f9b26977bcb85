"""Reports that proved nothing are listed for curators, read only."""

from pathlib import Path

import pytest
from django.test import Client

from digest import inbound
from digest.mail import reports

pytestmark = pytest.mark.django_db

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "bounces"


def test_it_lists_rejected_reports_for_curators_and_lets_nobody_edit_them(curator_client: Client) -> None:
    report = reports.parse((SAMPLES / "yahoo-arf-abuse.eml").read_bytes())
    assert inbound.report_handle(report) == "unmatched"

    page = curator_client.get("/admin/digest/rejectedreport/")

    assert page.status_code == 200
    text = page.content.decode()
    assert "eve@yahoo.example.net" in text
    assert "no valid VERP return path and no Message-ID of ours" in text
    assert curator_client.get("/admin/digest/rejectedreport/add/").status_code == 403
