"""One module per CLI command; each defines ``register(subparsers)`` and imports heavy code lazily."""
