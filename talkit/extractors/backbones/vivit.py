"""ViViT (Arnab et al., ICCV 2021, arXiv 2103.15691): two of its models as talkit backbones.

``vivit_b16x2_hf``: model 1 (unfactorised spatio-temporal attention), ViViT-B/16x2, with
module names that give exactly the key layout of the one public PyTorch ViViT checkpoint,
HF transformers' ``google/vivit-b-16x2-kinetics400`` (a ``VivitForVideoClassification``
saved by transformers 4.x: ``vivit.embeddings.*``, ``vivit.encoder.layer.N.attention.
attention.query.*``, ..., ``vivit.layernorm.*``, ``classifier.*``), so that file loads
strictly with no conversion and no dependency on transformers.

``vivit_b16x2``: model 2 (factorised encoder), ViViT-B/16x2 as Scenic's
``kinetics400/vivit_base_factorised_encoder.py`` configures it, built from timm's ViT
``Block``: a spatial ViT-B/16 (12 layers) runs on each 2-frame tubelet slice with its own
CLS token, its CLS outputs (after its final layernorm) go through a temporal transformer
(4 layers, Scenic's ``temporal_transformer.num_layers``) with its own CLS token. No
public checkpoint of model 2 exists in a PyTorch layout (Scenic publishes Flax ones), so
its key layout is talkit's own (``LAYOUT_FACTORISED``).

Both networks take ``{"rgb": (N, 3, T, H, W)}`` and return ``{"rgb": (N, 768)}``: the CLS
token after the final layernorm (model 1: ``last_hidden_state[:, 0]``, what the hub
checkpoint's ``classifier`` reads; model 2: the temporal CLS). Data paths, the snippet and
what was checked: docs/vivit.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from talkit.errors import CheckpointError
from talkit.extractors.checkpoints import identify_layout
from talkit.extractors.registry import (
    BackboneSpec,
    NetworkBackbone,
    Normalisation,
    build_unset,
    register_backbone,
    rgb_spec,
)
from talkit.extractors.weights import Weights

CLIP_LEN = 32  # frames per snippet: 16 tubelets of 2 frames
TUBELET = (2, 16, 16)
FEATURE_DIM = 768
NUM_CLASSES = 400
LN_EPS = 1e-6  # HF VivitConfig.layer_norm_eps; Flax's LayerNorm default in Scenic
# Scenic's zero_centering (x / 255 * 2 - 1, in [-1, 1]); see docs/vivit.md on HF's processor.
ZERO_CENTRED = Normalisation(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), value_range=255.0)
LAYOUT_HF = (
    "HF transformers 4.x VivitForVideoClassification state dict (google/vivit-b-16x2-"
    "kinetics400: vivit.embeddings.*, vivit.encoder.layer.N.*, vivit.layernorm, classifier)"
)
LAYOUT_FACTORISED = (
    "talkit's own factorised ViViT state dict (patch_embed, spatial.*, temporal.*, head; "
    "no public checkpoint exists in this layout: Scenic's are Flax)"
)
FEATURE_HF = "ViViT model 1 CLS token after vivit.layernorm (last_hidden_state[:, 0])"
FEATURE_FACTORISED = "ViViT model 2 temporal CLS token after temporal.norm"


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")  # HF's "gelu_fast", Flax's nn.gelu default


class TubeletEmbed(nn.Module):
    """Non-overlapping t x p x p tubelets -> tokens: one Conv3d with kernel = stride."""

    def __init__(self, dim: int, tubelet: tuple[int, int, int] = TUBELET) -> None:
        super().__init__()
        self.projection = nn.Conv3d(3, dim, kernel_size=tubelet, stride=tubelet)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(x)  # (N, D, T', H', W')


def _check_input(x: torch.Tensor, frames: int, size: int, name: str) -> None:
    if tuple(x.shape[2:]) != (frames, size, size):
        raise ValueError(
            f"{name} was built for {frames} frames of {size}x{size} px (its position "
            f"embeddings are sized by them); got {tuple(x.shape[2:])}"
        )


# -- model 1, HF key layout -------------------------------------------------------------------


class _HFSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, length, dim = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.query(x)), split(self.key(x)), split(self.value(x))
        )
        return out.transpose(1, 2).reshape(n, length, dim)


class _Dense(nn.Module):
    """A module holding one ``dense`` linear: HF's ``output``/``intermediate`` wrappers."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)


class _HFAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.attention = _HFSelfAttention(dim, heads)
        self.output = _Dense(dim, dim)


class _HFLayer(nn.Module):
    """Pre-norm transformer layer: x + attn(LN(x)), then + MLP(LN(.)) with tanh-GELU."""

    def __init__(self, dim: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.attention = _HFAttention(dim, heads)
        self.intermediate = _Dense(dim, mlp)
        self.output = _Dense(mlp, dim)
        self.layernorm_before = nn.LayerNorm(dim, eps=LN_EPS)
        self.layernorm_after = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.attention
        x = x + attn.output.dense(attn.attention(self.layernorm_before(x)))
        h = _gelu_tanh(self.intermediate.dense(self.layernorm_after(x)))
        return x + self.output.dense(h)


class _HFEmbeddings(nn.Module):
    def __init__(self, dim: int, tokens: int) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.patch_embeddings = TubeletEmbed(dim)
        self.position_embeddings = nn.Parameter(torch.zeros(1, tokens + 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embeddings(x).flatten(2).transpose(1, 2)  # (N, T'H'W', D), t-major
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.position_embeddings


class _HFEncoder(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_HFLayer(dim, heads, mlp) for _ in range(depth))


class _HFVivit(nn.Module):
    def __init__(self, dim: int, depth: int, heads: int, mlp: int, tokens: int) -> None:
        super().__init__()
        self.embeddings = _HFEmbeddings(dim, tokens)
        self.encoder = _HFEncoder(dim, depth, heads, mlp)
        self.layernorm = nn.LayerNorm(dim, eps=LN_EPS)


class VivitHF(nn.Module):
    """ViViT model 1 named as transformers 4.x's ``VivitForVideoClassification``."""

    def __init__(
        self,
        *,
        frames: int = CLIP_LEN,
        size: int = 224,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp: int = 3072,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.frames, self.size = frames, size
        tokens = (frames // TUBELET[0]) * (size // TUBELET[1]) * (size // TUBELET[2])
        self.vivit = _HFVivit(dim, depth, heads, mlp, tokens)
        self.classifier = nn.Linear(dim, num_classes)

    @property
    def head(self) -> nn.Linear:
        return self.classifier

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The final layernorm's output for all tokens (HF's ``last_hidden_state``)."""
        _check_input(x, self.frames, self.size, "vivit_b16x2_hf")
        h = self.vivit.embeddings(x)
        for layer in self.vivit.encoder.layer:
            h = layer(h)
        return self.vivit.layernorm(h)

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"rgb": (N, 3, T, H, W)}`` -> ``{"rgb": (N, 768)}``, the final CLS token."""
        return {"rgb": self.tokens(inputs["rgb"])[:, 0]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Kinetics logits; only there to show that a checkpoint's head loads."""
        return self.classifier(self.forward_features({"rgb": x})["rgb"])


# -- model 2, factorised encoder, talkit layout --------------------------------------------------


class _Encoder(nn.Module):
    """CLS token + learned position embedding + timm ViT blocks + final layernorm (Scenic's
    ``Encoder`` with a ``token`` classifier): returns the CLS token's output."""

    def __init__(self, dim: int, depth: int, heads: int, mlp: int, tokens: int) -> None:
        super().__init__()
        from timm.models.vision_transformer import Block

        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens + 1, dim))
        norm = partial(nn.LayerNorm, eps=LN_EPS)
        gelu = partial(nn.GELU, approximate="tanh")
        self.blocks = nn.Sequential(
            *(
                Block(
                    dim, heads, mlp_ratio=mlp / dim, qkv_bias=True, act_layer=gelu, norm_layer=norm
                )
                for _ in range(depth)
            )
        )
        self.norm = norm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))[:, 0]


class VivitFactorised(nn.Module):
    """ViViT model 2: spatial encoder per tubelet time step, temporal encoder over their CLS."""

    def __init__(
        self,
        *,
        frames: int = CLIP_LEN,
        size: int = 224,
        dim: int = 768,
        spatial_depth: int = 12,
        temporal_depth: int = 4,
        heads: int = 12,
        mlp: int = 3072,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.frames, self.size = frames, size
        steps, side = frames // TUBELET[0], size // TUBELET[1]
        self.patch_embed = TubeletEmbed(dim)
        self.spatial = _Encoder(dim, spatial_depth, heads, mlp, side * side)
        self.temporal = _Encoder(dim, temporal_depth, heads, mlp, steps)
        self.head = nn.Linear(dim, num_classes)

    def spatial_cls(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, T, H, W) -> (N, T', D): each time step's spatial CLS after spatial.norm."""
        _check_input(x, self.frames, self.size, "vivit_b16x2")
        e = self.patch_embed(x)  # (N, D, T', H', W')
        n, d, t = e.shape[:3]
        per_step = e.flatten(3).permute(0, 2, 3, 1).reshape(n * t, -1, d)  # (N T', H'W', D)
        return self.spatial(per_step).view(n, t, d)

    def forward_features(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"rgb": (N, 3, T, H, W)}`` -> ``{"rgb": (N, 768)}``, the temporal CLS token."""
        return {"rgb": self.temporal(self.spatial_cls(inputs["rgb"]))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features({"rgb": x})["rgb"])


def create_vivit_hf(**kwargs: int) -> VivitHF:
    """ViViT-B/16x2 model 1 in HF's layout (keywords: frames, size, dim, depth, heads, mlp,
    num_classes; the defaults are google/vivit-b-16x2-kinetics400's config), in eval mode."""
    return VivitHF(**kwargs).eval()


def create_vivit_factorised(**kwargs: int) -> VivitFactorised:
    """ViViT-B/16x2 factorised encoder (keywords: frames, size, dim, spatial_depth,
    temporal_depth, heads, mlp, num_classes; defaults Scenic's K400 config), in eval mode."""
    return VivitFactorised(**kwargs).eval()


def init_random_(model: nn.Module, seed: int) -> None:
    """Seeded random weights, ViT style: normal draws clipped at 2 sd (std 0.02 for linears,
    CLS tokens and position embeddings; 1/sqrt(fan-in) for the tubelet conv), zero biases,
    unit layernorms. Never real features: the spec says ``random:<seed>``."""
    gen = torch.Generator().manual_seed(seed)

    def trunc_(t: torch.Tensor, std: float = 0.02) -> None:
        t.copy_(torch.randn(t.shape, generator=gen).clamp_(-2, 2) * std)

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.Conv3d):
                fan_in = module.weight[0].numel()
                trunc_(
                    module.weight, 0.02 if isinstance(module, nn.Linear) else 1 / math.sqrt(fan_in)
                )
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()
        for name, param in model.named_parameters():
            if name.endswith(("cls_token", "pos_embed", "position_embeddings")):
                trunc_(param)


class VivitBackbone(NetworkBackbone):
    """Either ViViT network as a talkit backbone: one "rgb" stream, 768-d."""

    def __init__(self, spec: BackboneSpec, network: VivitHF | VivitFactorised, layout: str) -> None:
        super().__init__(spec)
        self.network = network
        self.layout = layout

    def _load_state(self, stream: str, state: dict[str, torch.Tensor], source: str) -> None:
        name = self.spec.name
        hint = self._weights_hint("a file in that layout")
        ours = self.network.state_dict()
        for key in (
            "vivit.embeddings.position_embeddings",
            "spatial.pos_embed",
            "temporal.pos_embed",
        ):
            theirs = state.get(key)
            if (
                theirs is not None
                and key in ours
                and theirs.ndim == 3
                and theirs.shape != ours[key].shape
            ):
                raise CheckpointError(
                    f"checkpoint {source}: {key} has {theirs.shape[1]} positions, the "
                    f"{name} network built for {self.network.frames} frames of "
                    f"{self.network.size} px has {ours[key].shape[1]}; talkit does not "
                    "interpolate position embeddings (the features would not be the model's)",
                    hint="build the backbone at the input size the checkpoint was trained at "
                    "(input_size=224 for the hub file)",
                )
        if "HF transformers" in (identify_layout(state) or "") and isinstance(
            self.network, VivitFactorised
        ):
            hint += "; the HF hub file is ViViT model 1: --backbone vivit_b16x2_hf loads it"
        self._refuse_another_layout(state, source, hint)
        # fine-tuned heads for another class count get a head that fits
        head = "classifier" if isinstance(self.network, VivitHF) else "head"
        self._load_strict(state, source, hint, head=head)

    def _init_random(self, seed: int) -> None:
        init_random_(self.network, seed)


_HUB = "https://huggingface.co/google/vivit-b-16x2-kinetics400"
WEIGHTS_HF = (
    Weights(
        name="vivit_b16x2_hf.kinetics400",
        backbone="vivit_b16x2_hf",
        url=f"{_HUB}/resolve/main/pytorch_model.bin",
        file_name="pytorch_model.bin",
        licence="MIT (the model card's licence: mit); converted from Scenic's ViViT-B/16x2 K400",
        layout=LAYOUT_HF,
    ),
)


def _spec(name: str, feature: str, **snippet: object) -> BackboneSpec:
    return rgb_spec(
        name,
        clip_len=CLIP_LEN,
        normalisation=ZERO_CENTRED,
        feature_dim=FEATURE_DIM,
        feature=feature,
        **snippet,  # type: ignore[arg-type]
    )


def _build(factory: type[nn.Module], input_size: int) -> nn.Module:
    # Built without its default init: the weights come from a checkpoint or a seed.
    return build_unset(lambda: factory(size=input_size))


@register_backbone("vivit_b16x2_hf", weights=WEIGHTS_HF)
def vivit_b16x2_hf(
    *,
    fps: float = 30.0,
    stride: int = 16,
    sampling_rate: int = 2,
    input_size: int = 224,
    resize_short: int | None = 256,
) -> VivitBackbone:
    """ViViT-B/16x2 model 1 (HF's google/vivit-b-16x2-kinetics400 layout): 32 frames at rate
    2 from 30 fps, short side 256 -> centre 224, pixels to [-1, 1], 768-d CLS."""
    spec = _spec(
        "vivit_b16x2_hf",
        FEATURE_HF,
        fps=fps,
        stride=stride,
        sampling_rate=sampling_rate,
        input_size=input_size,
        resize_short=resize_short,
    )
    return VivitBackbone(spec, _build(VivitHF, input_size), LAYOUT_HF)


@register_backbone("vivit_b16x2")
def vivit_b16x2(
    *,
    fps: float = 30.0,
    stride: int = 16,
    sampling_rate: int = 2,
    input_size: int = 224,
    resize_short: int | None = 256,
) -> VivitBackbone:
    """ViViT-B/16x2 factorised encoder (12 spatial + 4 temporal layers, talkit's layout): 32
    frames at rate 2 from 30 fps, short side 256 -> centre 224, pixels to [-1, 1], 768-d."""
    spec = _spec(
        "vivit_b16x2",
        FEATURE_FACTORISED,
        fps=fps,
        stride=stride,
        sampling_rate=sampling_rate,
        input_size=input_size,
        resize_short=resize_short,
    )
    return VivitBackbone(spec, _build(VivitFactorised, input_size), LAYOUT_FACTORISED)
