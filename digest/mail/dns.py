"""The DNS TXT records a deployment must publish for its mail to be trusted: DKIM, SPF and DMARC."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr

from django.conf import settings

from digest.mail import dkim

# What each provider's own documentation tells senders to include in their SPF record
# (the envelope sender domain they use for bounces may differ; their dashboard says).
PROVIDER_SPF = {
    "amazon_ses": "include:amazonses.com",
    "brevo": "include:spf.brevo.com",
    "mailgun": "include:mailgun.org",
    "mailjet": "include:spf.mailjet.com",
    "postmark": "include:spf.mtasv.net",
    "resend": "include:amazonses.com",
    "sendgrid": "include:sendgrid.net",
    "sparkpost": "include:sparkpostmail.com",
}


@dataclass(frozen=True)
class Record:
    name: str
    value: str
    why: str

    def zone_value(self) -> str:
        """The value as zone files and DNS consoles take it: quoted strings of at most 255
        characters each (a 2048-bit DKIM key is longer), which receivers join."""
        chunks = [self.value[i : i + 255] for i in range(0, len(self.value), 255)]
        return " ".join(f'"{chunk}"' for chunk in chunks)


def address_domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower()


def aligned(signing_domain: str, from_domain: str) -> bool:
    """DMARC's relaxed alignment: the same domain, or one the From domain sits under."""
    return from_domain == signing_domain or from_domain.endswith("." + signing_domain)


def records() -> tuple[list[Record], list[str]]:
    """The records to publish and warnings about the configuration, for ``checkdns``."""
    from_domains = sorted({address_domain(settings.DIGEST_FROM_EMAIL), address_domain(settings.DEFAULT_FROM_EMAIL)})
    out: list[Record] = []
    warnings: list[str] = []
    signer = dkim.signer()
    provider = settings.EMAIL_PROVIDER
    if signer is not None:
        name, value = signer.dns_record()
        out.append(Record(name, value, "DKIM public key: receivers check every signed message against it"))
        for domain in from_domains:
            if not aligned(settings.DKIM_DOMAIN, domain):
                warnings.append(
                    f"DKIM_DOMAIN {settings.DKIM_DOMAIN} is not {domain} or a parent of it: DMARC will not"
                    " count the signature as aligned"
                )
    elif provider == "smtp":
        warnings.append(
            "DKIM is not configured (DKIM_SELECTOR, DKIM_DOMAIN, DKIM_PRIVATE_KEY): bulk senders must sign;"
            " generate a key with `openssl genrsa -out dkim.pem 2048`"
        )
    else:
        warnings.append(f"DKIM: publish the records {provider}'s dashboard shows for your domain (it signs there)")
    if provider != "smtp":
        mechanism = PROVIDER_SPF.get(provider, f"include:<the SPF domain {provider} documents>")
    elif settings.EMAIL_HOST:
        mechanism = f"a:{settings.EMAIL_HOST}"
    else:
        mechanism = "a:<your SMTP relay>"
    for domain in from_domains:
        out.append(
            Record(
                domain,
                f"v=spf1 {mechanism} ~all",
                "SPF hint: the hosts that may send as this domain (merge it into any SPF record you already have;"
                " one SPF record per name)",
            )
        )
        out.append(
            Record(
                f"_dmarc.{domain}",
                f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}; adkim=r; aspf=r",
                "DMARC starting policy: report only; move to p=quarantine once the reports show every source aligned",
            )
        )
    return out, warnings
