"""Explanations with captum: Grad-CAM for images, integrated gradients over token embeddings for text.

Both need gradients, so they never run in the inference batch path: adapters offer them as methods
of the explain lane (models/contract.py), which runs on a runner of its own, on a private copy of the
network (captum attaches hooks to the layer it explains; the copy keeps them away from the
inference thread's forward passes).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .contract import InvalidInput
from .explain_io import TokenWeight

GRID_SIZE = 16  # the image grid returned: coarse enough to be small JSON, finer than Grad-CAM's 7x7 maps
TEXT_STEPS = 16  # integration steps for text: enough for stable signs on short texts, 16 forward/backward passes


def preload() -> None:
    """Import captum and the colour maps now (about 1.3 s), at warm-up rather than in a request's time."""
    import captum.attr  # noqa: F401
    from matplotlib import colormaps  # noqa: F401


def last_conv(model: nn.Module) -> nn.Module:
    """The network's last 2-D convolution: Grad-CAM's usual layer (the last one with a spatial map)."""
    convs = [module for module in model.modules() if isinstance(module, nn.Conv2d)]
    if not convs:
        raise TypeError(f"{type(model).__name__} has no Conv2d layer to explain with Grad-CAM")
    return convs[-1]


def gradcam_grid(forward: Callable[[torch.Tensor], torch.Tensor], layer: nn.Module, pixels: torch.Tensor,
                 target: int) -> torch.Tensor:
    """A [GRID_SIZE, GRID_SIZE] map in [0, 1] of where `pixels` (1xCxHxW) supports class `target`."""
    from captum.attr import LayerAttribution, LayerGradCam

    attribution = LayerGradCam(forward, layer).attribute(pixels, target=target, relu_attributions=True)
    grid = LayerAttribution.interpolate(attribution.detach(), (GRID_SIZE, GRID_SIZE), interpolate_mode="bilinear")
    return _unit_range(grid[0, 0].clamp(min=0))


def overlay_png(view: torch.Tensor, grid: torch.Tensor, opacity: float = 0.5) -> bytes:
    """`view` (3xHxW in [0, 1], the image as the model saw it) with `grid` drawn over it as a heatmap PNG."""
    from matplotlib import colormaps
    from PIL import Image

    height, width = view.shape[1:]
    heat = torch.nn.functional.interpolate(grid[None, None], (height, width), mode="bilinear")[0, 0]
    colours = torch.from_numpy(colormaps["jet"](heat.clamp(0, 1).numpy())[..., :3]).float().permute(2, 0, 1)
    blended = (1 - opacity) * view + opacity * colours
    image = Image.fromarray((blended.clamp(0, 1) * 255).byte().permute(1, 2, 0).numpy())
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def token_weights(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], embeddings: nn.Module,
                  ids: torch.Tensor, mask: torch.Tensor, baseline: torch.Tensor, target: int) -> list[float]:
    """Each token's share in `target` (integrated gradients over its embedding), scaled to [-1, 1].

    `ids` and `mask` are 1xT; `baseline` is `ids` with the content tokens replaced by padding.
    """
    from captum.attr import LayerIntegratedGradients

    explainer = LayerIntegratedGradients(forward, embeddings)
    attribution = explainer.attribute(ids, baselines=baseline, target=target, additional_forward_args=(mask,),
                                      n_steps=TEXT_STEPS, internal_batch_size=TEXT_STEPS)
    per_token = attribution.detach().sum(dim=-1)[0]
    scale = per_token.abs().max().clamp(min=1e-12)
    return (per_token / scale).tolist()  # type: ignore[no-any-return]


@dataclass
class TokenizedText:
    """A text's token ids with each token's character span (special tokens have an empty one)."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    labels: tuple[str, ...] = ()


def tokenize_with_offsets(tokenizer: Any, text: str, labels: tuple[str, ...] = ()) -> TokenizedText:
    """Token ids and character offsets; a tokenizer without offsets (a slow one) cannot be explained."""
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidInput("this model's tokenizer gives no character offsets, so its answers cannot be explained; "
                           "omit `explain`", param="explain", code="explain_not_supported")
    encoded = tokenizer(text, truncation=False, return_offsets_mapping=True)
    return TokenizedText(text, list(encoded["input_ids"]), [tuple(span) for span in encoded["offset_mapping"]], labels)


def explain_tokens(forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], embeddings: nn.Module,
                   tokens: TokenizedText, pad_id: int, target: int, device: str) -> list[TokenWeight]:
    """Each content token's weight for output `target` of `forward(ids, mask)`; special tokens are left out."""
    ids = torch.tensor([tokens.ids], device=device)
    content = torch.tensor([[end > start for start, end in tokens.offsets]], device=device)
    baseline = torch.where(content, torch.full_like(ids, pad_id), ids)  # keep [CLS]/[SEP], blank the words
    weights = token_weights(forward, embeddings, ids, torch.ones_like(ids), baseline, target)
    return [TokenWeight(tokens.text[start:end], start, end, weight)
            for (start, end), weight in zip(tokens.offsets, weights) if end > start]


def _unit_range(values: torch.Tensor) -> torch.Tensor:
    top = values.max()
    return values / top if top > 0 else values


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a timm model (a tensor) or a transformers one (an output object)."""
    logits: torch.Tensor = getattr(output, "logits", output)
    return logits.float()
