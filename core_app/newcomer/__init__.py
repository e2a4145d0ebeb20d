"""The newcomer path: `core call` (signed requests) and `core demo` (sample data through the topics)."""
