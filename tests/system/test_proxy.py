"""Behind the TLS proxy: gunicorn on PostgreSQL and Redis counts and records each visitor
by X-Forwarded-For from a trusted proxy, and ignores the header from anyone else."""

import re

import httpx
from stack import Stack

from tests.factories import signup_data


def test_it_limits_and_records_each_visitor_behind_a_trusted_proxy(stack: Stack) -> None:
    # The proxy is 127.0.0.1; a client connecting from 127.0.0.2 is not trusted.
    stack.env.update(TRUSTED_PROXIES="127.0.0.1", SIGNUP_PER_IP_PER_HOUR="1", PREVIEW_PER_IP_PER_MINUTE="1")
    stack.start("web")
    page = httpx.get(stack.url + "/", timeout=10)
    cookie = page.cookies["csrftoken"]  # marked Secure (DEBUG off): sent by hand over plain HTTP
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    proxy = httpx.Client(base_url=stack.url, timeout=10)
    stranger = httpx.Client(base_url=stack.url, timeout=10, transport=httpx.HTTPTransport(local_address="127.0.0.2"))

    def signup(http: httpx.Client, email: str, forwarded: str) -> int:
        data = {**signup_data(email=email), "csrfmiddlewaretoken": token}
        headers = {"Cookie": f"csrftoken={cookie}", "X-Forwarded-For": forwarded}
        return http.post("/", data=data, headers=headers).status_code

    assert signup(proxy, "ada@example.org", "203.0.113.7") == 302
    assert signup(proxy, "bob@example.org", "198.51.100.9") == 302
    assert signup(proxy, "eve@example.org", "192.0.2.66, 203.0.113.7") == 429  # a hop the client wrote
    assert signup(stranger, "sam@example.org", "192.0.2.50") == 302
    assert signup(stranger, "tim@example.org", "192.0.2.51") == 429  # its header is not believed

    consents = stack.rows(
        "SELECT s.email, host(c.ip) FROM digest_consentrecord c JOIN digest_subscriber s ON s.id = c.subscriber_id"
    )
    assert sorted(consents) == [
        ("ada@example.org", "203.0.113.7"),
        ("bob@example.org", "198.51.100.9"),
        ("sam@example.org", "127.0.0.2"),
    ]

    def preview(forwarded: str) -> int:
        return proxy.get("/preview", params={"topics": "x"}, headers={"X-Forwarded-For": forwarded}).status_code

    assert [preview("203.0.113.7"), preview("198.51.100.9"), preview("203.0.113.7")] == [200, 200, 429]
