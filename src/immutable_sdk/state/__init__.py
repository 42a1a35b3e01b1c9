"""State stores: the SQLite default and the DynamoDB team backend."""
