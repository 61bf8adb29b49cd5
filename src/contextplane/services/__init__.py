"""Services above the log: each is a Kafka client of the cluster, never a reader of the
broker's storage or metadata store."""
