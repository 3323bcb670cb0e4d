"""What the web process and the workers share: configuration, the schema, money rules, events."""
