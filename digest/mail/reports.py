"""Read what comes back to the bounce mailbox: RFC 3464 delivery-status notifications, RFC 5965
(ARF) complaint reports and mailto unsubscribe requests, as plain data. No subscriber logic."""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr

# What a report is. "ignore" is a well-formed report that asks nothing of us (a delay
# notice, a success DSN, a not-spam or DMARC report): handled, nothing changes.
HARD_BOUNCE = "hard_bounce"
SOFT_BOUNCE = "soft_bounce"
COMPLAINT = "complaint"
UNSUBSCRIBE = "unsubscribe"
IGNORE = "ignore"
UNRECOGNIZED = "unrecognized"

# RFC 5965 feedback types that mean "this recipient did not want it".
COMPLAINT_TYPES = {"abuse", "fraud"}
UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe-([A-Za-z0-9_:\-]+)")
# Where mail servers note the address a message was delivered to (the VERP return path of a bounce).
DELIVERED_TO = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")


@dataclass
class Report:
    kind: str
    report_id: str  # the report's own Message-ID, or a hash of its bytes: the idempotency key
    recipients: list[str] = field(default_factory=list)  # whose mail bounced or was reported
    message_ids: list[str] = field(default_factory=list)  # of the original message(s)
    delivered_to: list[str] = field(default_factory=list)  # where the report arrived (VERP)
    status: str = ""  # RFC 3463 status code, e.g. 5.1.1
    detail: str = ""
    token: str = ""  # the unsubscribe token of a mailto request


def _address(value: str) -> str:
    """A DSN address field ("rfc822; ann@example.org") or a header ("<ann@example.org>")."""
    value = value.split(";", 1)[1] if ";" in value else value
    return parseaddr(value.strip())[1].lower() or value.strip().strip("<>").lower()


def _original_ids(part: Message) -> list[str]:
    """The Message-ID of the returned original: a message/rfc822 part or text/rfc822-headers."""
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        inner = inner[0] if isinstance(inner, list) and inner else inner
        if isinstance(inner, Message) and inner.get("Message-ID"):
            return [str(inner["Message-ID"]).strip()]
        return []
    raw = part.get_payload(decode=True) or b""
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(raw)
    return [str(headers["Message-ID"]).strip()] if headers.get("Message-ID") else []


def _dsn(message: Message, report: Report) -> None:
    statuses = []
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            blocks = part.get_payload()
            if not isinstance(blocks, list):
                continue
            for block in blocks[1:]:  # the first block is per-message (Reporting-MTA, ...)
                action = str(block.get("Action", "")).strip().lower()
                status = str(block.get("Status", "")).strip().split(" ")[0]
                recipient = block.get("Final-Recipient") or block.get("Original-Recipient") or ""
                if recipient:
                    report.recipients.append(_address(str(recipient)))
                statuses.append((action, status))
                diagnostic = " ".join(str(block.get("Diagnostic-Code", "")).split())
                report.detail = report.detail or diagnostic.split(";", 1)[-1].strip()[:400]
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            report.message_ids += _original_ids(part)
    failed = [status for action, status in statuses if action == "failed"]
    if not statuses:
        report.kind = UNRECOGNIZED
    elif any(status.startswith("5") for status in failed):
        report.kind, report.status = HARD_BOUNCE, next(s for s in failed if s.startswith("5"))
    elif failed:
        # A 4.x.x failure: the receiving side gave up on a temporary condition (mailbox full, ...).
        report.kind, report.status = SOFT_BOUNCE, failed[0]
    else:
        report.kind, report.status = IGNORE, statuses[0][1]  # delayed, delivered, relayed, expanded


def _arf(message: Message, report: Report) -> None:
    feedback_type = ""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            fields = part.get_payload()
            fields = fields[0] if isinstance(fields, list) and fields else fields
            if not isinstance(fields, Message):
                # Some reporters send the fields as a text body the parser does not split.
                fields = email.message_from_string(str(fields), policy=email.policy.compat32)
            feedback_type = str(fields.get("Feedback-Type", "")).strip().lower()
            for recipient in fields.get_all("Original-Rcpt-To") or []:
                report.recipients.append(_address(str(recipient)))
            report.detail = f"feedback report: {feedback_type or 'no type'}"
            if fields.get("User-Agent"):
                report.detail += f" from {' '.join(str(fields['User-Agent']).split())[:100]}"
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            report.message_ids += _original_ids(part)
            if not report.recipients and kind == "message/rfc822":
                inner = part.get_payload()
                inner = inner[0] if isinstance(inner, list) and inner else inner
                if isinstance(inner, Message):
                    report.recipients += [a.lower() for _, a in getaddresses(inner.get_all("To") or []) if a]
    if not feedback_type:
        report.kind = UNRECOGNIZED
    elif feedback_type in COMPLAINT_TYPES:
        report.kind = COMPLAINT
    else:
        report.kind = IGNORE  # not-spam, virus, auth-failure (DMARC forensic), other


def parse(data: bytes, *, unsubscribe_address: str = "") -> Report:
    """What one message in the bounce mailbox is; never raises on malformed input."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    report_id = str(message.get("Message-ID", "")).strip() or "sha256:" + hashlib.sha256(data).hexdigest()
    report = Report(kind=UNRECOGNIZED, report_id=report_id[:255])
    for name in DELIVERED_TO:
        report.delivered_to += [a.lower() for _, a in getaddresses(message.get_all(name) or []) if a]
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type", "") or "").lower()
    try:
        if content_type == "multipart/report" and report_type == "delivery-status":
            _dsn(message, report)
        elif content_type == "multipart/report" and report_type == "feedback-report":
            _arf(message, report)
        elif unsubscribe_address and unsubscribe_address.lower() in report.delivered_to:
            # Mail programs fold a long subject, or encode it as RFC 2047 words.
            subject = "".join(str(make_header(decode_header(str(message.get("Subject", ""))))).split())
            match = UNSUBSCRIBE_SUBJECT.search(subject)
            if match:
                report.kind, report.token = UNSUBSCRIBE, match.group(1)
                report.recipients = [a.lower() for _, a in getaddresses(message.get_all("From") or []) if a]
    except (AttributeError, IndexError, LookupError, TypeError, ValueError):
        # A report too broken to read is left for a person, like anything unrecognized.
        report.kind = UNRECOGNIZED
    report.recipients = list(dict.fromkeys(r for r in report.recipients if r))
    report.message_ids = list(dict.fromkeys(report.message_ids))
    return report
