"""What secrets look like inside text: shared by the redactor (``redaction``) and ``validate``.

``find_secrets(text)`` returns the spans of ``text`` to hide, each with a kind:

* by shape: PEM private key blocks (even cut short), AWS access key ids (``AKIA...``,
  ``ASIA...``) and secret access keys (40 characters of mixed-case base64), GitHub tokens
  (``ghp_``, ``gho_``, ``ghs_``, ``ghu_``, ``ghr_``, ``github_pat_``), GitLab, npm and PyPI tokens,
  Slack tokens (``xoxb-``...) and the secret path of Slack and Discord webhook URLs, JSON Web
  Tokens, Stripe (``sk_live_``...), OpenAI-style (``sk-...``) and SendGrid keys, Google API keys
  (``AIza...``), and long high-entropy tokens (32 or more characters mixing upper case, lower
  case and digits, with at least ``ENTROPY_THRESHOLD`` bits of entropy per character);
* by place: the password of a URL's user info (``scheme://user:PASSWORD@host``); the value after
  a secret-like name, written ``NAME=value``, ``NAME = value``, ``NAME: value``, ``"NAME":
  "value"``, ``'NAME': 'value'`` or ``--name value`` (the rest of the line after
  ``Authorization:`` or ``Cookie:``); secret-like query parameters (also ``key``, ``sig``,
  ``signature`` there).

A name is secret-like (``is_secret_name``) when it contains password, passwd, passphrase,
secret, token, credential, api key, access key, private key (or a signing, deploy, ssh, session,
master or encryption key), or has a part auth, authorization, pwd, pw, pass, sig, signature or
cookie, in any case, after any prefix (``DB_PASSWORD``, ``AWS_SECRET_ACCESS_KEY``,
``dbPassword``), unless its last part says it names or points at a secret rather than holding
it (``secret_arn``, ``token_url``, ``password_file``, ``secret_env``...) or it is one of AWS's
non-secret token fields (``HttpTokens``, ``NextToken``, ``ClientToken``). Hex digests, ids,
ARNs, AMI ids and words are not secrets: they lack a character class or the entropy.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

ENTROPY_THRESHOLD = 4.0  # bits per character; hex tops out at 4.0, random base62 of 32 ~ 4.6
TOKEN_MIN_LENGTH = 32

KINDS = {  # kind -> how validate names it; earlier kinds win where spans overlap
    "private-key": "a private key block",
    "url-password": "a password in a URL",
    "webhook-url": "a webhook URL's secret path",
    "aws-access-key-id": "an AWS access key id",
    "github-token": "a GitHub token",
    "slack-token": "a Slack token",
    "jwt": "a JSON Web Token",
    "api-key": "an API key (Stripe, Google, OpenAI, SendGrid, GitLab, npm, PyPI)",
    "aws-secret-access-key": "an AWS secret access key",
    "named": "a secret by its name",
    "high-entropy": "a long high-entropy token (an API token or generated password?)",
    "secret-name": "a secret by its name",
}

# --- names -------------------------------------------------------------------------------

_STRONG = re.compile(
    r"passw(?:or)?d|passphrase|secret|token|credential|api_?key|access_?key|private_?key"
    r"|(?:signing|encryption|master|deploy|ssh|session)_?key",
)
_WEAK = frozenset(
    {"auth", "authorization", "pwd", "pw", "pass", "sig", "signature", "cookie", "apikey"}
)
_NOT_SECRET_LAST = frozenset(
    [
        "arn",
        "name",
        "names",
        "id",
        "ids",
        "env",
        "var",
        "file",
        "path",
        "dir",
        "url",
        "uri",
        "endpoint",
        "ttl",
        "length",
        "count",
        "expiry",
        "expires",
        "expiration",
        "type",
        "kind",
        "version",
        "field",
        "header",
        "enabled",
        "policy",
        "rotation",
        "format",
        "ref",
    ]
)  # a name for, or a pointer to, a secret: secret_arn, token_url, password_file, secret_env
_NOT_SECRET_NAMES = frozenset(
    [
        "httptokens",
        "nexttoken",
        "clienttoken",
        "continuationtoken",
        "nextcontinuationtoken",
        "idempotencytoken",
        "tokentype",
        "passed",
        "passes",
        "signatureversion",
    ]
)  # AWS's non-secret fields (IMDSv2's HttpTokens, pagination tokens) and words
_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_QUERY_NAMES = frozenset({"key", "sig", "signature", "code", "x_amz_signature"})


def name_parts(name: str) -> list[str]:
    """``AWS_SECRET_ACCESS_KEY``, ``dbPassword``, ``x-api-key`` -> lower-case words."""
    return [p.lower() for p in _PART.findall(name.rsplit(".", 1)[-1])]


def is_secret_name(name: object) -> bool:
    """Whether values under this name (a key, a variable, a header, a flag) are secrets."""
    if not isinstance(name, str):
        return False
    parts = name_parts(name)
    if not parts or parts[-1] in _NOT_SECRET_LAST or "".join(parts) in _NOT_SECRET_NAMES:
        return False
    return _STRONG.search("_".join(parts)) is not None or not _WEAK.isdisjoint(parts)


# --- shapes ------------------------------------------------------------------------------

PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----"
    r"(?:(?!-----END)(?:[A-Za-z0-9+/=:,.\s-]|\\[nr]))*"
    r"(?:-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----)?"
)
ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")
SECRET_ACCESS_KEY = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")
TOKEN = re.compile(r"(?<![A-Za-z0-9_\-+/])[A-Za-z0-9_\-+/]{32,}={0,2}(?![A-Za-z0-9_\-+/=])")
_B = r"(?<![A-Za-z0-9_-])"  # a token starts here
_E = r"(?![A-Za-z0-9_-])"  # and ends here
SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("github-token", re.compile(_B + r"(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_\w{22,255})")),
    ("slack-token", re.compile(_B + r"xox[abposre]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,}")),
    ("jwt", re.compile(_B + r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*" + _E)),
    (
        "api-key",
        re.compile(
            _B + r"(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,}"
            r"|AIza[\w-]{35}|sk-(?:[a-z]+-)*[A-Za-z0-9_-]{20,}|SG\.[\w-]{16,}\.[\w-]{16,}"
            r"|glpat-[\w-]{20,}|npm_[A-Za-z0-9]{36}|pypi-[\w-]{50,})" + _E
        ),
    ),
)
WEBHOOK_PATH = re.compile(
    r"(?:hooks\.slack\.com/(?:services|workflows|triggers)/|"
    r"discord(?:app)?\.com/api/webhooks/\d+/)(?P<secret>[A-Za-z0-9_/-]+)"
)
URL_USERINFO = re.compile(
    r"\b[A-Za-z][A-Za-z0-9+.-]*://(?P<user>[^:/?#@\s\"'<>]*)(?::(?P<password>[^/?#\s\"'<>]*))?@"
)

# --- names next to values ----------------------------------------------------------------

_VALUE = r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s"'&,;\\<>]+)"""
# A lookahead: every name is tried, also one inside the value of another ("note: token=x").
ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_.])(?=(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)[\"']?[ \t]*(?P<op>=|:(?!//))"
    r"[ \t]*" + _VALUE + ")"
)
FLAG = re.compile(r"(?<![\w-])--(?P<name>[A-Za-z][\w-]*)[ \t]+(?!-)" + _VALUE)
QUERY = re.compile(r"[?&;](?P<name>[^=&#\s?]+)=(?P<value>[^&#\s\"'<>\\]*)")
_TRAILING = ".:)]}"  # punctuation after an unquoted value ("password=abc: denied")
_LINE_END = re.compile(r"[\n\"']|\Z")
_CREDENTIALS = re.compile(r"[ \t]+([^\s\"'&,;\\<>]+)")
_SCHEMES = frozenset({"bearer", "basic", "token", "digest", "negotiate", "bot", "aws4-hmac-sha256"})
_WHOLE_LINE = frozenset({"authorization", "proxyauthorization", "cookie", "setcookie"})
_PLACEHOLDERS = frozenset(
    {"", "none", "null", "nil", "true", "false", "[redacted]", "redacted", "***", "-", "*"}
)


def is_placeholder(value: str) -> bool:
    """A value that stands for a secret without being one (a reference, a mask, nothing)."""
    v = value.strip().strip("\"'")
    return (
        v.lower() in _PLACEHOLDERS
        or (len(v) >= 3 and set(v) <= {"*", "x", "X", "."})
        or v.startswith(("${", "{{", "$(", "var.", "local.", "<", "[redacted]"))
    )


@dataclass(frozen=True)
class Finding:
    kind: str  # a key of KINDS
    start: int
    end: int


def entropy(text: str) -> float:
    """Shannon entropy of ``text`` in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def mixes_classes(text: str) -> bool:
    """Upper case, lower case and a digit or symbol: what random keys have and words lack."""
    return (
        any(c.islower() for c in text)
        and any(c.isupper() for c in text)
        and any(c.isdigit() or c in "/+" for c in text)
    )


def is_secret_access_key(text: str) -> bool:
    return len(text) == 40 and mixes_classes(text)


def is_high_entropy(text: str) -> bool:
    # A path of words and ids (hostedzone/Z2FDTNDATAQYW2) has no part that mixes every
    # class; a random token with slashes has.
    return (
        len(text) >= TOKEN_MIN_LENGTH
        and any(c.isdigit() for c in text)
        and any(len(part) >= 8 and mixes_classes(part) for part in text.split("/"))
        and entropy(text) > ENTROPY_THRESHOLD
    )


def _value_span(text: str, m: re.Match[str], name: str) -> tuple[int, int] | None:
    """Where the secret after ``name`` is in ``text`` (inside its quotes), or None."""
    start, end = m.span("value")
    value = m.group("value")
    if is_placeholder(value):
        return None
    if value[:1] in "\"'":
        start, end = start + 1, end - 1
    elif "".join(name_parts(name)) in _WHOLE_LINE:  # to the end of the line or its quotes
        end = _LINE_END.search(text, start).start()  # type: ignore[union-attr]
    elif value.lower() in _SCHEMES:  # Authorization-like: "Bearer <token>"
        credentials = _CREDENTIALS.match(text, end)
        if credentials is None:
            return None
        start, end = credentials.span(1)
    else:
        end = start + len(value.rstrip(_TRAILING))
    if start >= end or is_placeholder(text[start:end]):
        return None
    return start, end


def _spans(text: str) -> Iterator[tuple[str, int, int]]:
    if "PRIVATE KEY" in text:
        for m in PRIVATE_KEY.finditer(text):
            yield "private-key", m.start(), m.end()
    if "://" in text:
        for m in URL_USERINFO.finditer(text):
            password = m.group("password")
            if password and not is_placeholder(password):
                yield "url-password", m.start("password"), m.end("password")
            elif password is None and len(m.group("user")) >= 16:  # https://TOKEN@host
                yield "url-password", m.start("user"), m.end("user")
        for m in WEBHOOK_PATH.finditer(text):
            yield "webhook-url", m.start("secret"), m.end("secret")
    for m in ACCESS_KEY_ID.finditer(text):
        yield "aws-access-key-id", m.start(), m.end()
    for kind, shape in SHAPES:
        for m in shape.finditer(text):
            yield kind, m.start(), m.end()
    for m in SECRET_ACCESS_KEY.finditer(text):
        if is_secret_access_key(m.group(0)):
            yield "aws-secret-access-key", m.start(), m.end()
    for pattern in (ASSIGNMENT, FLAG):
        for m in pattern.finditer(text):
            name = m.group("name")
            if pattern is ASSIGNMENT and m.group("op") == ":" and "." in name:
                continue  # a dotted spec path in a message ("images.web.vars.db_password: ...")
            if is_secret_name(name):
                span = _value_span(text, m, name)
                if span is not None:
                    yield "named", *span
    if "=" in text:
        for m in QUERY.finditer(text):
            name = m.group("name")
            query_name = "_".join(name_parts(name)) in _QUERY_NAMES or is_secret_name(name)
            value = m.group("value")
            if query_name and not is_placeholder(value):
                value = value.rstrip(_TRAILING)
                yield "named", m.start("value"), m.start("value") + len(value)
    for m in TOKEN.finditer(text):
        if is_high_entropy(m.group(0)):
            yield "high-entropy", m.start(), m.end()


def find_secrets(text: str) -> list[Finding]:
    """Every secret-looking span of ``text``, in order; overlapping spans are joined."""
    rank = {kind: i for i, kind in enumerate(KINDS)}
    found: list[Finding] = []
    for kind, start, end in sorted(_spans(text), key=lambda s: (s[1], -s[2])):
        if found and start < found[-1].end:
            last = found[-1]
            best = last.kind if rank[last.kind] <= rank[kind] else kind
            found[-1] = Finding(best, last.start, max(last.end, end))
        else:
            found.append(Finding(kind, start, end))
    return found


def replace_secrets(text: str, replacement: str) -> str:
    """``text`` with every secret-looking span replaced."""
    for f in reversed(find_secrets(text)):
        text = text[: f.start] + replacement + text[f.end :]
    return text
