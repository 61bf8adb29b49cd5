"""The broker's HTTP surface (`http.port`): Prometheus metrics at /metrics."""
