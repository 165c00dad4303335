"""DGAM: discriminative and generative attention modelling (Shi et al., CVPR 2020).

As the authors' code (bfshi/DGAM-Weakly-Supervised-Action-Localization) runs it, with the
RGB and flow streams as two independent models inside one head::

    per stream s ∈ {rgb, flow}, x_s (B, T, 1024):
        λ = σ(Linear(256→1)(ReLU(Linear(1024→256)(x_s))))          attention
        f_fg = Σλx / (Σλ + 1),  f_bg = Σ(1−λ)x / (Σ(1−λ) + 1e-6)    pooling
        cls: Linear(1024 → C+1), background last
        CVAE: Enc([x, λ]) → (μ, log σ²) ∈ R¹²⁸,  Dec([z, λ]) → x̂,  prior p(z|λ) = N(λ·1, I)

Training alternates two stages, each ``stage_iterations`` steps long (one pass over the
training videos in the reference, so one "epoch" is a CVAE pass plus a model pass):

- CVAE stage: 10·r · (MSE(x, x̂) + 0.1·KL(q ‖ N(λ, I))), λ detached: only the CVAEs learn.
- model stage: w_fg L_fg + w_bg L_bg + w_guide L_guide + w_recon L_recon, with the CVAE's
  weights detached (the gradient of L_recon reaches λ through the decoder, but the decoder
  is not trained): only the attention and classifiers learn.

r = min(epoch, 300)/300. One optimizer holds both parts: a parameter whose gradient is None
is left alone by Adam (value and moments), so this is the reference's two optimizers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from talkit.wtal_heads.dgam_losses import (
    background_loss,
    foreground_loss,
    guide_loss,
    kl_to_attention_prior,
    masked_mse,
    pool_fg_bg,
    ramp,
    smoothed_guide_scores,
)
from talkit.wtal_heads.head import Inference, WTALHead, register_head

STREAMS = ("rgb", "flow")


class StreamModel(nn.Module):
    """One stream's classifier (C + 1 outputs, background last) and attention λ."""

    def __init__(self, dim: int, num_classes: int, att_hidden: int = 256) -> None:
        super().__init__()
        self.classifier = nn.Linear(dim, num_classes + 1)
        self.attention = nn.Sequential(
            nn.Linear(dim, att_hidden), nn.ReLU(), nn.Linear(att_hidden, 1), nn.Sigmoid()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.attention(x).squeeze(-1)


class CVAE(nn.Module):
    """Conditional VAE of one stream's features given λ; prior N(λ·1, I)."""

    def __init__(self, dim: int, latent: int = 128) -> None:
        super().__init__()
        self.latent = latent
        self.encoder = nn.Sequential(
            nn.Linear(dim + 1, latent),
            nn.ReLU(),
            nn.Linear(latent, latent),
            nn.ReLU(),
            nn.Linear(latent, 2 * latent),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent + 1, latent),
            nn.ReLU(),
            nn.Linear(latent, latent),
            nn.ReLU(),
            nn.Linear(latent, dim),
        )

    def encode(self, x: Tensor, att: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(torch.cat([x, att[..., None]], dim=-1))
        return h[..., : self.latent], h[..., self.latent :]

    def decode(self, z: Tensor, att: Tensor, *, frozen: bool = False) -> Tensor:
        """x̂ = Dec([z, λ]); ``frozen`` uses detached weights so only λ and z get gradients."""
        inp = torch.cat([z, att[..., None]], dim=-1)
        if not frozen:
            return self.decoder(inp)
        params = {k: v.detach() for k, v in self.decoder.named_parameters()}
        return functional_call(self.decoder, params, (inp,))

    def sample_prior(self, att: Tensor) -> Tensor:
        """z ~ N(λ·1, I)."""
        return (
            torch.randn(*att.shape, self.latent, device=att.device, dtype=att.dtype)
            + att[..., None]
        )


class DGAM(WTALHead):
    """Two stream models and two CVAEs trained in alternation; see the module docstring."""

    postprocess = "dgam"

    def __init__(
        self,
        *,
        in_dim: int,
        num_classes: int,
        att_hidden: int = 256,
        latent: int = 128,
        stage_iterations: int = 6,
        ramp_epochs: int = 300,
        cvae_weight: float = 10.0,
        kl_weight: float = 0.1,
        fg_weight: tuple[float, float] = (1.0, 1.0),
        bg_weight: tuple[float, float] = (0.03, 0.03),
        guide_weight: tuple[float, float] = (0.1, 0.1),
        recon_weight: tuple[float, float] = (0.5, 0.3),
        recon_ramp: bool = True,
        guide_sigma: float = 1.0,
        fusion: tuple[float, float] = (0.35, 0.65),
    ) -> None:
        super().__init__()
        if in_dim % 2:
            raise ValueError(f"in_dim must be even (an RGB and a flow half), got {in_dim}")
        if stage_iterations < 1:
            raise ValueError(f"stage_iterations must be >= 1, got {stage_iterations}")
        for name, pair in (
            ("fg_weight", fg_weight),
            ("bg_weight", bg_weight),
            ("guide_weight", guide_weight),
            ("recon_weight", recon_weight),
            ("fusion", fusion),
        ):
            if len(pair) != 2:
                raise ValueError(f"{name} must be [rgb, flow], got {list(pair)}")
        self.num_classes, self.in_dim = num_classes, in_dim
        half = in_dim // 2
        self.models = nn.ModuleDict(
            {s: StreamModel(half, num_classes, att_hidden) for s in STREAMS}
        )
        self.cvaes = nn.ModuleDict({s: CVAE(half, latent) for s in STREAMS})
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self.stage_iterations, self.ramp_epochs = stage_iterations, ramp_epochs
        self.cvae_weight, self.kl_weight = cvae_weight, kl_weight
        self.weights = {
            "fg": tuple(fg_weight),
            "bg": tuple(bg_weight),
            "guide": tuple(guide_weight),
            "recon": tuple(recon_weight),
        }
        self.recon_ramp, self.guide_sigma = recon_ramp, guide_sigma
        self.fusion = tuple(float(f) for f in fusion)
        self.init_input_stats(in_dim)

    def split(self, x: Tensor) -> dict[str, Tensor]:
        half = self.in_dim // 2
        return {"rgb": x[..., :half], "flow": x[..., half:]}

    def stage(self, iteration: int) -> tuple[str, int]:
        """('cvae' | 'model', epoch) of a training iteration: CVAE stage first, as the reference."""
        n = self.stage_iterations
        return ("cvae" if (iteration // n) % 2 == 0 else "model"), iteration // (2 * n)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
        x = self.standardize(x, mask)
        out: dict[str, Tensor] = {}
        if mask is not None:
            out["mask"] = mask
        for s, xs in self.split(x).items():
            att = self.models[s](xs)
            if mask is not None:
                att = att * mask.to(att.dtype)
            out[f"x_{s}"], out[f"att_{s}"] = xs, att
        return out

    def loss(self, out: dict[str, Tensor], labels: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The loss of this iteration's stage; advances the step count in training mode."""
        iteration = int(self.step)
        if self.training:
            self.step += 1
        stage, epoch = self.stage(iteration)
        r = ramp(epoch, self.ramp_epochs)
        mask = out.get("mask")
        keep = labels.sum(1) > 0
        y = labels[keep]
        m = None if mask is None else mask[keep]
        terms: list[Tensor] = []
        parts: dict[str, float] = {"stage_cvae": float(stage == "cvae"), "ramp": r}
        for i, s in enumerate(STREAMS):
            xs, att = out[f"x_{s}"][keep], out[f"att_{s}"][keep]
            if xs.shape[0] == 0:
                continue
            if stage == "cvae":
                cvae, a = self.cvaes[s], att.detach()
                mean, log_var = cvae.encode(xs, a)
                z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_var)
                mse = masked_mse(cvae.decode(z, a), xs, m)
                kl = kl_to_attention_prior(mean, log_var, a, m)
                term = self.cvae_weight * r * (mse + self.kl_weight * kl)
                parts[f"cvae_mse_{s}"] = float(mse.detach())
                parts[f"cvae_kl_{s}"] = float(kl.detach())
            else:
                model = self.models[s]
                fg, bg = pool_fg_bg(xs, att, m)
                l_fg = foreground_loss(model.classifier(fg), y)
                l_bg = background_loss(model.classifier(bg))
                guide = smoothed_guide_scores(xs, model.classifier.weight, m, self.guide_sigma)
                l_guide = guide_loss(att, guide, y, m)
                recon = self.cvaes[s].decode(self.cvaes[s].sample_prior(att), att, frozen=True)
                l_recon = masked_mse(recon, xs.detach(), m)
                w_recon = self.weights["recon"][i] * (r if self.recon_ramp else 1.0)
                term = (
                    self.weights["fg"][i] * l_fg
                    + self.weights["bg"][i] * l_bg
                    + self.weights["guide"][i] * l_guide
                    + w_recon * l_recon
                )
                for k, v in (("fg", l_fg), ("bg", l_bg), ("guide", l_guide), ("recon", l_recon)):
                    parts[f"loss_{k}_{s}"] = float(v.detach())
            terms.append(term)
        if not terms:  # no labelled video: a differentiable zero that touches no weight
            zero = torch.zeros((), device=labels.device, requires_grad=True)
            return zero, parts
        return torch.stack(terms).sum(), parts

    def stream_outputs(self, x: Tensor, mask: Tensor | None = None) -> dict[str, Inference]:
        """Per stream s, as the reference's ``test_final`` (both streams available):

        - class probabilities softmax(cls(Σλx / Σλ)) without background;
        - ``threshold_cas``: the wtCAS λ_s·σ(x_s W_sᵀ) over the C classes (no bias);
        - ``cas`` (the score signal): λ_s·(α_s·wtCAS_s + (1 − α_s)·λ_s·σ(x_o W_oᵀ)), o the
          other stream and α the stream's fusion weight (RGB 0.35, flow 0.65 on THUMOS14);
        - ``attention``: λ_s, for the threshold's 0.2·λ² term.
        """
        x = self.standardize(x, mask)
        m = None if mask is None else mask.to(x.dtype)
        att, probs, sig = {}, {}, {}
        for s, xs in self.split(x).items():
            model = self.models[s]
            a = model(xs)
            if m is not None:
                a = a * m
            f = (a[..., None] * xs).sum(1) / a.sum(1, keepdim=True).clamp_min(1e-12)
            att[s] = a
            probs[s] = torch.softmax(model.classifier(f), dim=-1)[:, :-1]
            sig[s] = torch.sigmoid(xs @ model.classifier.weight[:-1].t())
        res: dict[str, Inference] = {}
        for i, s in enumerate(STREAMS):
            other = STREAMS[1 - i]
            alpha, lam = self.fusion[i], att[s][..., None]
            wtcas = lam * sig[s]
            score = lam * (alpha * wtcas + (1 - alpha) * lam * sig[other])
            res[s] = Inference(
                class_scores=probs[s], cas=score, attention=att[s], threshold_cas=wtcas
            )
        return res

    @torch.no_grad()
    def infer(self, x: Tensor, mask: Tensor | None = None) -> Inference:
        """The two streams for detection (``streams``), and for plots and ensembles their
        fusion-weighted class probabilities, wtCAS and λ."""
        per = self.stream_outputs(x, mask)
        w = self.fusion
        rgb, flow = per["rgb"], per["flow"]
        return Inference(
            class_scores=w[0] * rgb.class_scores + w[1] * flow.class_scores,
            cas=w[0] * rgb.threshold_cas + w[1] * flow.threshold_cas,  # type: ignore[operator]
            attention=w[0] * rgb.attention + w[1] * flow.attention,  # type: ignore[operator]
            streams=per,
        )


@register_head("dgam")
def create_dgam(
    *,
    in_dim: int = 2048,
    num_classes: int = 20,
    att_hidden: int = 256,
    latent: int = 128,
    stage_iterations: int = 6,
    ramp_epochs: int = 300,
    cvae_weight: float = 10.0,
    kl_weight: float = 0.1,
    fg_weight: tuple[float, float] | list[float] = (1.0, 1.0),
    bg_weight: tuple[float, float] | list[float] = (0.03, 0.03),
    guide_weight: tuple[float, float] | list[float] = (0.1, 0.1),
    recon_weight: tuple[float, float] | list[float] = (0.5, 0.3),
    recon_ramp: bool = True,
    guide_sigma: float = 1.0,
    fusion: tuple[float, float] | list[float] = (0.35, 0.65),
) -> DGAM:
    """DGAM with its THUMOS14 defaults; ActivityNet 1.2 sets fg_weight [1, 0.3], bg_weight
    [1, 1], recon_weight [0.1, 0.1] without the ramp, fusion [0.5, 0.5] and 150-step stages
    (see configs/train/dgam_activitynet12.yaml)."""
    return DGAM(
        in_dim=in_dim,
        num_classes=num_classes,
        att_hidden=att_hidden,
        latent=latent,
        stage_iterations=stage_iterations,
        ramp_epochs=ramp_epochs,
        cvae_weight=cvae_weight,
        kl_weight=kl_weight,
        fg_weight=tuple(fg_weight),  # type: ignore[arg-type]
        bg_weight=tuple(bg_weight),  # type: ignore[arg-type]
        guide_weight=tuple(guide_weight),  # type: ignore[arg-type]
        recon_weight=tuple(recon_weight),  # type: ignore[arg-type]
        recon_ramp=recon_ramp,
        guide_sigma=guide_sigma,
        fusion=tuple(fusion),  # type: ignore[arg-type]
    )
