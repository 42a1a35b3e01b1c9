"""immutable-sdk-linear: shift traffic to the new release by N% every interval."""

__version__ = "0.1.0"
