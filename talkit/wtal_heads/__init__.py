"""talkit.wtal_heads."""
