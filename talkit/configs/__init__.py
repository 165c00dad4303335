"""The YAML presets shipped with talkit (read through talkit.presets)."""
