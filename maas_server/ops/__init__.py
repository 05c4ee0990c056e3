"""Operations: Prometheus metrics (metrics.py) and structured JSON logs (logs.py)."""
