"""What counts as a secret inside text, and what does not (ids, digests, ARNs, words)."""

from __future__ import annotations

import pytest

from immutable_sdk.redaction import REDACTED, redact, redact_text
from immutable_sdk.redaction.shapes import entropy, find_secrets, is_secret_name

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "ghp_R8x2Lq9ZpV4mT7nK1wB5cY3dF6hJ0sUa2eGi"
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----"
)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (f"export KEY={ACCESS_KEY_ID}", "aws-access-key-id"),
        (f"secret = {SECRET_KEY}\n", "aws-secret-access-key"),
        (f"curl -H 'Authorization: token {TOKEN}'", "github-token"),
        ("curl -H 'Authorization: token 9fQ2xLm7ZpV4Rb8KwT1nYc3dH6jS0uEa5gBi'", "named"),
        (f"x\n{PRIVATE_KEY}\ny", "private-key"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7", "private-key"),  # cut short
    ],
)
def test_each_shape_is_found_and_redacted(text: str, kind: str) -> None:
    (finding,) = find_secrets(text)
    assert finding.kind == kind
    assert REDACTED in redact_text(text)
    secret = text[finding.start : finding.end]
    assert secret not in redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "i-0123456789abcdef0 ami-0d27e0fb3bac4d724 r-f5848568ba72 ro-1800000000-a1b2c3",
        "sha256 " + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-web/c5f4479121b8a9ec",
        "demo-web-1.0.0-20261127104512 snapshot/snap-0123456789abcdef0",
        "AutoScalingGroupNameDescriptionAndSomeMoreWords",  # a long word: no digit
        "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ",  # words and ids joined by /
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA1",  # classes but no entropy
    ],
)
def test_ordinary_text_is_not_a_secret(text: str) -> None:
    assert find_secrets(text) == []
    assert redact_text(text) == text


def test_entropy_separates_tokens_from_hex() -> None:
    assert entropy("0123456789abcdef" * 4) == pytest.approx(4.0)
    assert entropy(TOKEN) > 4.5


def test_names_and_nested_values() -> None:
    assert is_secret_name("API_KEY") and is_secret_name("db_password")
    assert not is_secret_name("app_version")
    assert redact({"vars": {"api_key": "x", "note": f"t={TOKEN}"}}) == {
        "vars": {"api_key": REDACTED, "note": f"t={REDACTED}"}
    }
