"""Task registries the tests run in real workers (`--app apps.tasks` with tests/ on the path)."""
