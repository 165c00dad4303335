"""Backbones as ``torch.nn.Module``s with a uniform ``forward_features``, one module per family."""
