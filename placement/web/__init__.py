"""The service's read-only status page: what an operator sees without Prometheus or Grafana."""
