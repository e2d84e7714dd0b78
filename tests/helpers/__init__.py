"""Small test-only helpers: loopback servers and instrumented transports."""
