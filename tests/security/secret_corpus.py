"""The one list of secret shapes every output channel is tested with, and what must survive.

Each ``Shape`` is a line as a tool might print it (Packer's output, an error, a URL) and the
secret inside it; ``registered`` shapes carry no name or shape of their own and are hidden only
because the spec declared their value secret (``!secret``, a secret-like key or ``${VAR}``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    name: str
    line: str
    secret: str
    registered: bool = False


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq3kT9EXAMP"
PEM_BODY = (
    "MIIEowIBAAKCAQEAvX3kZ8Qp2LmN7rT5wY1cB4dF6hJ9sUa0eGi3oK8lP2qR5tV7",
    "xW9yZ1aB3cD5eF7gH9iJ2kL4mN6oP8qR0sT2uV4wX6yZ8aB1cD3eF5gH7iJ9kL2",
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(PEM_BODY) + "\n-----END RSA PRIVATE KEY-----"

CORPUS: tuple[Shape, ...] = (
    Shape("NAME=value", "db_password=Zq7vLp2mWx", "Zq7vLp2mWx"),
    Shape("env export", "export DB_PASSWORD=hunter2-prod-db", "hunter2-prod-db"),
    Shape("AWS secret after =", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}", AWS_SECRET),
    Shape("AWS secret after a space", f"aws secret key {AWS_SECRET[::-1]}", AWS_SECRET[::-1]),
    Shape("AWS access key id", "using AKIAZ7QF3XKD2M5LNP4R now", "AKIAZ7QF3XKD2M5LNP4R"),
    Shape("NAME: value", "api_key: 5f2b9c1d-e7a3-4b8f", "5f2b9c1d-e7a3-4b8f"),
    Shape("JSON", '{"client_secret": "cs-8d7f6e5d4c"}', "cs-8d7f6e5d4c"),
    Shape("HCL", 'vault_token = "hcl-Pa55-word"', "hcl-Pa55-word"),
    Shape("flag", "run --password flag-Pa55-3141 --verbose", "flag-Pa55-3141"),
    Shape("URL user info", "GET https://deploy:url-Pa55w0rd@db.internal:5432/x", "url-Pa55w0rd"),
    Shape("query password", "GET http://127.0.0.1/h?password=qp-s3cret-9&v=1", "qp-s3cret-9"),
    Shape("query api_key", "GET http://127.0.0.1/h?v=1&api_key=qk-0451-xyz", "qk-0451-xyz"),
    Shape(
        "query signature", "https://b.s3.amazonaws.com/k?X-Amz-Signature=f00dfeed42", "f00dfeed42"
    ),
    Shape("GitHub ghp_", "token ghp_R8x2Lq9ZpV4mT7nK1wB5cY3dF6hJ0sUa2eGi", "R8x2Lq9ZpV4mT7nK1wB5"),
    Shape("GitHub gho_", "gho_16C7e42F292c6912E7710c838347Ae178B4a", "16C7e42F292c6912E771"),
    Shape(
        "GitHub ghs_",
        "x-access-token ghs_Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5",
        "Ab3dE5gH7jK9mN1pQ3",
    ),
    Shape(
        "GitHub fine-grained",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS",
        "11ABCDEFG0123456789_abcdefghijklmnop",
    ),
    Shape("Slack token", "xoxb-2048-4096-AbCdEfGhIjKlMnOp", "AbCdEfGhIjKlMnOp"),
    Shape(
        "Slack webhook",
        "posting to https://hooks.slack.com/services/T024BE7LD/B01ABCDEF/aBcDeFgHiJkLmNoPqRsTuVwX",
        "aBcDeFgHiJkLmNoPqRsTuVwX",
    ),
    Shape(
        "JWT",
        "Authorization header eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkZXBsb3kifQ.c2lnbmF0dXJlLXNpZ24",
        "eyJzdWIiOiJkZXBsb3kifQ",
    ),
    Shape("PEM block", PEM, PEM_BODY[0]),
    Shape("PEM body line", PEM_BODY[1], PEM_BODY[1]),
    Shape("Stripe", "charging with sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    Shape("Google API key", "key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY", "SyD-9tSrke72PouQMnMX"),
    Shape("Authorization", "Authorization: Bearer opaque-bearer-7788", "opaque-bearer-7788"),
    Shape("cookie", "Cookie: session=c00k1e-5e55; theme=dark", "c00k1e-5e55"),
    Shape("marked !secret, alone", "connecting with c0rrect-h0rse-9", "c0rrect-h0rse-9", True),
    Shape("secret-named var, alone", "value is plainpass-1234", "plainpass-1234", True),
)
SECRETS = tuple(s.secret for s in CORPUS)
REGISTERED = tuple(s.secret for s in CORPUS if s.registered)

# What redaction must leave alone: ids, ARNs, digests, URLs without credentials, words.
ORDINARY = (
    "i-0123456789abcdef0 ami-0d27e0fb3bac4d724 r-f5848568ba72 ro-1800000000-a1b2c3",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/shop-web/c5f4479121b8a9ec",
    "arn:aws:iam::123456789012:role/deploy arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ",
    "lt-0abc123def4567890 version 7 snap-0123456789abcdef0 sg-0a1b2c3d vpc-12345678",
    "GET http://127.0.0.1:8080/healthz?verbose=1&region=us-east-1: 200",
    "https://hooks.example.com/deploy https://user@example.com/x ssh://git@github.com/o/r.git",
    "demo-web-1.0.0-20261127104512 web-3f2a9c1e release r7",
    "HttpTokens: required NextToken=abc123 ClientToken=x1y2z3",
    "images.web.vars.db_password: looks like a secret by its name written in the spec",
    "secret_env: DEPLOY_HOOK_SECRET password_file=/etc/app/pw token_url=https://auth/x",
    "token: [redacted] password=${DB_PASSWORD} api_key=var.api_key passed=3 passes=2",
    "rollout promoted in 3 steps; capacity 4 healthy, 4 in service (web-1: 4)",
    "AutoScalingGroupNameDescriptionAndSomeMoreWords 2026-12-04T20:25:20Z",
)


def leaked(text: str, secrets: tuple[str, ...] = SECRETS) -> list[str]:
    """The secrets of the corpus that appear in ``text``."""
    return [s for s in secrets if s in text]
