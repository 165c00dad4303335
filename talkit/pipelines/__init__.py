"""talkit.pipelines."""
