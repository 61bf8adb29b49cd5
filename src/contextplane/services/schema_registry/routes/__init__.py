"""One module per resource of Confluent's REST API."""
