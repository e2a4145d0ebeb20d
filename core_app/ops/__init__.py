"""Operations hooks of a worker: Consul registration and PostHog product events."""
