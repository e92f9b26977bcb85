"""Print the DNS TXT records (DKIM key, SPF hint, DMARC policy) the configured sending domains need."""

from django.core.management.base import BaseCommand

from digest.mail import dns


class Command(BaseCommand):
    help = "Print the DKIM, SPF and DMARC TXT records to publish for the configured From domains."

    def handle(self, *args: object, **options: object) -> None:
        records, warnings = dns.records()
        for record in records:
            self.stdout.write(f"; {record.why}")
            self.stdout.write(f"{record.name}.  TXT  {record.zone_value()}")
            self.stdout.write("")
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")
