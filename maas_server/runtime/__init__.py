"""The runtime: one runner thread per model (queue, batching), the registry, device choice."""
