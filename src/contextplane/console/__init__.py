"""The broker's HTTP surface (`http.port`): Prometheus metrics at /metrics and the web
console's pages at /."""
