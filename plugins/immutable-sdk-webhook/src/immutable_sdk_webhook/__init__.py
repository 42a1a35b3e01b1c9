"""immutable-sdk-webhook: post every rollout lifecycle event as JSON to a URL."""

__version__ = "0.2.0"
