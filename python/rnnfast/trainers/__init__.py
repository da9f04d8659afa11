"""The training loop and what it needs: data adapters, compile utilities."""
