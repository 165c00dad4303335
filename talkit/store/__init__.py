"""talkit.store."""
