"""The only code that calls boto3."""
