"""The backbone families, one module each; importing this package registers them all.

Each module holds a ``torch.nn.Module`` network with ``forward_features`` (``{stream:
(N, C, T, H, W)}`` -> ``{stream: (N, D)}``), its :class:`~talkit.extractors.registry.
BackboneSpec` defaults (the snippet definition, as data, in the factory's keywords: the one
place each default lives) and its table of public checkpoints (``WEIGHTS``), registered
with ``@register_backbone(name, weights=WEIGHTS)``.

Adding a backbone: one module here plus its line below; see docs/backbones.md.
"""

from talkit.extractors.backbones import csn, i3d, ircsn, slowfast, tdn, vivit  # noqa: F401
