"""talkit.extractors."""
