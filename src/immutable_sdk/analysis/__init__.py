"""Built-in canary analysis providers (plugins: they import only ``immutable_sdk.plugin``)."""
