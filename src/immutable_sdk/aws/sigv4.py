"""AWS Signature Version 4 for HTTP requests the SDK's clients do not make (a Prometheus query
API on Amazon Managed Service for Prometheus): botocore's own signer, the session's credentials.
"""

from __future__ import annotations

from collections.abc import Mapping

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ..errors import AwsError


def signed_headers(
    credentials: Mapping[str, str],
    method: str,
    url: str,
    *,
    service: str,
    region: str,
    headers: Mapping[str, str],
    body: bytes = b"",
) -> dict[str, str]:
    """``headers`` plus ``Authorization``, ``X-Amz-Date`` (and the session token) for the request.

    ``credentials`` are environment variables as ``PluginContext.credentials()`` gives them.
    """
    key = credentials.get("AWS_ACCESS_KEY_ID")
    secret = credentials.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise AwsError(f"no AWS credentials to sign a request to {service} in {region}")
    signer = SigV4Auth(
        Credentials(key, secret, credentials.get("AWS_SESSION_TOKEN")), service, region
    )
    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(headers))
    signer.add_auth(request)
    return {str(k): str(v) for k, v in request.headers.items()}
