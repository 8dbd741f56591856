"""SSRF rules of the webhook client: which hosts may be called and which addresses are refused."""

from __future__ import annotations

import pytest

from scheduling.errors import WebhookRefused
from scheduling.tasks.webhook_client import call, check_address, host_permission


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "fe80::1%eth0",
        "192.0.0.8",
        "192.0.0.170",
        "2002:7f00:1::1",
        "2002:c0a8:101::1",
        "2002::1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert check_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert check_address(address) is None


def test_a_non_address_is_refused() -> None:
    assert check_address("example.com") is not None


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("hooks.example.com", ["hooks.example.com"], "exact"),
        ("HOOKS.example.com.", ["hooks.example.com"], "exact"),
        ("a.example.com", ["*.example.com"], "wildcard"),
        ("a.b.example.com", ["*.example.com"], "wildcard"),
        ("example.com", ["*.example.com"], None),
        ("badexample.com", ["*.example.com"], None),
        ("anything.org", ["*"], "wildcard"),
        ("10.0.0.5", ["10.0.0.5"], "exact"),
        ("::1", ["[::1]"], "exact"),
        ("evil.com", ["hooks.example.com"], None),
        ("evil.com", [], None),
    ],
)
def test_host_permission(host: str, allowed: list[str], expected: str | None) -> None:
    assert host_permission(host, allowed) == expected


class RecordingResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.answers[host]


def test_a_host_not_listed_is_refused_without_even_resolving_it() -> None:
    resolver = RecordingResolver({})
    with pytest.raises(WebhookRefused, match=r"not in \[webhooks\]\.allowed_hosts"):
        call("https://evil.com/x", allowed_hosts=["hooks.example.com"], resolver=resolver)
    assert resolver.asked == []


@pytest.mark.parametrize(
    "answers",
    [["10.0.0.5"], ["169.254.169.254"], ["93.184.216.34", "127.0.0.1"], ["::ffff:10.0.0.1"]],
)
def test_a_wildcard_host_resolving_to_an_internal_address_is_refused(answers: list[str]) -> None:
    resolver = RecordingResolver({"metadata.example.com": answers})
    with pytest.raises(WebhookRefused, match="resolves to"):
        call("http://metadata.example.com/", allowed_hosts=["*.example.com"], resolver=resolver)
    assert resolver.asked == ["metadata.example.com"]


def test_an_internal_ip_literal_needs_to_be_listed_exactly() -> None:
    with pytest.raises(WebhookRefused, match=r"169\.254\.169\.254"):
        call("http://169.254.169.254/latest/meta-data/", allowed_hosts=["*"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/", "http:// or https://"),
        ("http:///path", "http:// or https://"),
        ("http://user:pw@hooks.example.com/", "credentials"),
    ],
)
def test_urls_that_are_not_plain_http_are_refused(url: str, message: str) -> None:
    with pytest.raises(WebhookRefused, match=message):
        call(url, allowed_hosts=["hooks.example.com"], resolver=RecordingResolver({}))


def test_unknown_methods_are_refused() -> None:
    with pytest.raises(WebhookRefused, match="method"):
        call("http://hooks.example.com/", method="CONNECT", allowed_hosts=["hooks.example.com"])
