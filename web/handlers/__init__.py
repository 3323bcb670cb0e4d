"""One module per API resource, each exposing ``ROUTES``."""
