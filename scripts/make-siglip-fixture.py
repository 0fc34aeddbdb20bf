#!/usr/bin/env python3
"""Writes a tiny random SigLIP model folder in the Hugging Face layout, its ONNX exports and
reference outputs: the committed test fixture test/fixtures/siglip-tiny.

  /usr/bin/python3 scripts/make-siglip-fixture.py --out test/fixtures/siglip-tiny

Needs only plain PyTorch (Debian's python3-torch 1.13); neither Hugging Face's python
transformers nor the onnx package. The model below is our own PyTorch reference of SigLIP
(Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"), written from the paper,
big_vision's description of its towers and the parameter layout of transformers' SiglipModel
(names and shapes, so a real google/siglip-* model.safetensors has the same keys):

- vision tower: a ViT without a class token. Patch embedding is a stride-p conv WITH bias,
  learned positions for the P patches only, no pre-layernorm; pre-norm encoder blocks;
  post_layernorm over every token (HF's last_hidden_state is after it); the image embedding
  is a multi-head attention pooling head ("MAP" in big_vision): one learned probe query
  attends over the tokens (torch nn.MultiheadAttention, packed in_proj), then a residual MLP
  after a layernorm; the probe's output is the embedding (no further projection).
- text tower: token + position embeddings, pre-norm blocks WITHOUT a causal mask (SigLIP's
  text transformer is bidirectional), final_layer_norm; pooled = the LAST position's state
  (texts are padded to max_length, as big_vision trains), through a linear head (with bias).
- logit_scale t' and logit_bias b (shape [1]); logits = exp(t')·<x̂, ŷ> + b; the paper's
  init t' = log 10, b = -10.
- activations gelu_pytorch_tanh (the tanh approximation), layer_norm_eps 1e-6.

The tokenizer is the CLIP fixture's word-level tokenizer.json adapted to SigLIP's conventions
(no BOS, "</s>" appended, padding with "</s>" to max_length), because the fixture must stay a
few KB and offline: a real SigLIP tokenizer.json is a sentencepiece Unigram model, which
tokenizers.js reads too, but no such file is available here to test with.
"""
import argparse
import importlib.util
import json
import math
import os

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("make_onnx_fixture", os.path.join(HERE, "make-onnx-fixture.py"))
clip_fixture = importlib.util.module_from_spec(spec)
spec.loader.exec_module(clip_fixture)

WORDS = clip_fixture.WORDS
UNK = "<unk>"
EOS = "</s>"
TEXTS = clip_fixture.TEXTS

CONFIG = {
    "architectures": ["SiglipModel"],
    "model_type": "siglip",
    "initializer_factor": 1.0,
    "text_config": {
        "model_type": "siglip_text_model", "vocab_size": len(WORDS) + 2, "hidden_size": 24, "intermediate_size": 48,
        "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 16,
        "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "projection_size": 32,
        "pad_token_id": len(WORDS) + 1, "bos_token_id": None, "eos_token_id": len(WORDS) + 1,
    },
    "vision_config": {
        "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_channels": 3, "image_size": 32, "patch_size": 8,
        "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6,
    },
}


class Attention(nn.Module):
    """Self-attention with separate q/k/v/out projections (HF's SiglipAttention names)."""

    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, hidden)

    def forward(self, x):
        n, length, hidden = x.shape
        split = lambda t: t.reshape(n, length, self.heads, self.head_dim).transpose(1, 2)
        q = split(self.q_proj(x)) * self.head_dim ** -0.5
        k = split(self.k_proj(x))
        v = split(self.v_proj(x))
        context = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v
        return self.out_proj(context.transpose(1, 2).reshape(n, length, hidden))


class Mlp(nn.Module):
    def __init__(self, hidden, intermediate):
        super().__init__()
        self.fc1 = nn.Linear(hidden, intermediate)
        self.fc2 = nn.Linear(intermediate, hidden)

    def forward(self, x):
        # gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))


class EncoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.self_attn = Attention(c["hidden_size"], c["num_attention_heads"])
        self.layer_norm2 = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.mlp = Mlp(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([EncoderLayer(c) for _ in range(c["num_hidden_layers"])])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.position_embedding = nn.Embedding(c["max_position_embeddings"], c["hidden_size"])


class TextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = TextEmbeddings(c)
        self.encoder = Encoder(c)
        self.final_layer_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.head = nn.Linear(c["hidden_size"], c["projection_size"])

    def forward(self, input_ids):
        length = input_ids.shape[1]
        positions = torch.arange(length)
        x = self.embeddings.token_embedding(input_ids) + self.embeddings.position_embedding(positions)[None]
        tokens = self.final_layer_norm(self.encoder(x))
        return tokens, self.head(tokens[:, -1, :])


class VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.patch_embedding = nn.Conv2d(c["num_channels"], c["hidden_size"], c["patch_size"], stride=c["patch_size"])
        self.position_embedding = nn.Embedding((c["image_size"] // c["patch_size"]) ** 2, c["hidden_size"])


class AttentionPoolingHead(nn.Module):
    """big_vision's MAP head: a learned probe attends over the tokens, then a residual MLP."""

    def __init__(self, c):
        super().__init__()
        hidden = c["hidden_size"]
        self.heads = c["num_attention_heads"]
        self.probe = nn.Parameter(torch.randn(1, 1, hidden))
        # Kept as torch's module for its parameter names (in_proj_weight [3D, D] packs q, k, v).
        self.attention = nn.MultiheadAttention(hidden, self.heads, batch_first=True)
        self.layernorm = nn.LayerNorm(hidden, eps=c["layer_norm_eps"])
        self.mlp = Mlp(hidden, c["intermediate_size"])

    def attend(self, tokens):
        """The probe's attention written out (checked against nn.MultiheadAttention in main)."""
        n, length, hidden = tokens.shape
        head_dim = hidden // self.heads
        w_q, w_k, w_v = self.attention.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.attention.in_proj_bias.chunk(3)
        probe = self.probe.expand(n, 1, hidden)
        q = (probe @ w_q.T + b_q).reshape(n, 1, self.heads, head_dim).transpose(1, 2) * head_dim ** -0.5
        k = (tokens @ w_k.T + b_k).reshape(n, length, self.heads, head_dim).transpose(1, 2)
        v = (tokens @ w_v.T + b_v).reshape(n, length, self.heads, head_dim).transpose(1, 2)
        context = (torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v).transpose(1, 2).reshape(n, 1, hidden)
        return self.attention.out_proj(context)

    def forward(self, tokens):
        x = self.attend(tokens)
        x = x + self.mlp(self.layernorm(x))
        return x[:, 0]


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = VisionEmbeddings(c)
        self.encoder = Encoder(c)
        self.post_layernorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])
        self.head = AttentionPoolingHead(c)

    def forward(self, pixel_values):
        patches = self.embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        x = patches + self.embeddings.position_embedding.weight[None]
        tokens = self.post_layernorm(self.encoder(x))
        return tokens, self.head(tokens)


class Siglip(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.text_model = TextTransformer(config["text_config"])
        self.vision_model = VisionTransformer(config["vision_config"])
        self.logit_scale = nn.Parameter(torch.tensor([math.log(10.0)]))
        self.logit_bias = nn.Parameter(torch.tensor([-10.0]))


class VisionGraph(nn.Module):
    """What onnx/vision_model.onnx computes (transformers.js' SiglipVisionModel outputs)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        tokens, pooled = self.model.vision_model(pixel_values)
        return tokens, pooled


class TextGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        tokens, pooled = self.model.text_model(input_ids)
        return tokens, pooled


def sigmoid_loss(image_embeds, text_embeds, logit_scale, logit_bias):
    """The paper's loss: -1/|B| Σ_ij log σ(z_ij (t x̂_i·ŷ_j + b)), z = +1 on the diagonal, -1 elsewhere."""
    x = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    y = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    logits = logit_scale.exp() * x @ y.T + logit_bias
    z = 2 * torch.eye(len(x)) - 1
    return -nn.functional.logsigmoid(z * logits).sum() / len(x)


def tokenizer_json(vocab):
    special = lambda token: {"id": vocab[token], "content": token, "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [special(UNK), special(EOS)],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": EOS, "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": EOS, "type_id": 1}}],
            "special_tokens": {EOS: {"id": EOS, "ids": [vocab[EOS]], "tokens": [EOS]}},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
    }


def tokenize(text, vocab, max_length):
    """The tokenizer.json above, then truncation keeping "</s>" last and padding with "</s>" to max_length."""
    import re
    words = re.findall(r"\w+|[^\w\s]+", text.lower())
    ids = [vocab.get(w, vocab[UNK]) for w in words][: max_length - 1] + [vocab[EOS]]
    mask = [1] * len(ids) + [0] * (max_length - len(ids))
    return ids + [vocab[EOS]] * (max_length - len(ids)), mask


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=4321)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    model = Siglip(CONFIG).eval()
    # Wide random weights (norms and biases too), so a wrongly used norm or bias shows.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in ("logit_scale", "logit_bias"):
                continue
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.copy_(1 + 0.2 * noise if "norm" in name and name.endswith("weight") else 0.3 * noise)
    os.makedirs(os.path.join(args.out, "onnx"), exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
        f.write("\n")
    clip_fixture.write_safetensors(os.path.join(args.out, "model.safetensors"), list(model.state_dict().items()))

    vocab = {word: i for i, word in enumerate(WORDS)}
    vocab[UNK] = len(WORDS)
    vocab[EOS] = len(WORDS) + 1
    max_length = CONFIG["text_config"]["max_position_embeddings"]
    with open(os.path.join(args.out, "tokenizer.json"), "w") as f:
        json.dump(tokenizer_json(vocab), f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "SiglipTokenizer", "model_max_length": max_length, "eos_token": EOS,
                   "pad_token": EOS, "unk_token": UNK, "do_lower_case": True, "model_input_names": ["input_ids"]}, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "special_tokens_map.json"), "w") as f:
        json.dump({"eos_token": EOS, "pad_token": EOS, "unk_token": UNK}, f, indent=2)
        f.write("\n")
    size = CONFIG["vision_config"]["image_size"]
    # SigLIP's processor squashes to size×size without a crop (SiglipImageProcessor has no crop
    # step), as transformers' own SigLIP folders write it; vlbench reads this form.
    with open(os.path.join(args.out, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "SiglipImageProcessor", "do_resize": True, "size": {"height": size, "width": size},
                   "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                   "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}, f, indent=2)
        f.write("\n")

    pixels = clip_fixture.pixel_formula(2, size)
    encoded = [tokenize(t, vocab, max_length) for t in TEXTS]
    input_ids = torch.tensor([ids for ids, _ in encoded], dtype=torch.int64)
    attention_mask = torch.tensor([mask for _, mask in encoded], dtype=torch.int64)
    vision = VisionGraph(model).eval()
    text = TextGraph(model).eval()
    with torch.no_grad():
        # The written-out probe attention is torch's nn.MultiheadAttention.
        tokens, _ = model.vision_model(pixels)
        head = model.vision_model.head
        torch_mha = head.attention(head.probe.expand(len(tokens), 1, -1), tokens, tokens, need_weights=False)[0]
        assert (torch_mha - head.attend(tokens)).abs().max() < 1e-5, "probe attention differs from nn.MultiheadAttention"
        torch.onnx.export(vision, (pixels,), os.path.join(args.out, "onnx", "vision_model.onnx"), opset_version=14,
                          input_names=["pixel_values"], output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"},
                                        "pooler_output": {0: "batch_size"}})
        # Like the public SigLIP exports: input_ids only (no attention mask: SigLIP attends over padding).
        torch.onnx.export(text, (input_ids,), os.path.join(args.out, "onnx", "text_model.onnx"), opset_version=14,
                          input_names=["input_ids"], output_names=["last_hidden_state", "pooler_output"],
                          dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                        "last_hidden_state": {0: "batch_size", 1: "sequence_length"},
                                        "pooler_output": {0: "batch_size"}})
        image_tokens, image_embeds = vision(pixels)
        text_tokens, text_embeds = text(input_ids)
        x = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
        y = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
        logits_per_image = model.logit_scale.exp() * x @ y.T + model.logit_bias
        # A sigmoid-loss case for the TypeScript objective: 2 images against the first 2 texts.
        loss = sigmoid_loss(image_embeds, text_embeds[:2], model.logit_scale, model.logit_bias)
    rounded = lambda t: [round(float(v), 7) for v in t.flatten()] if t.dim() <= 1 else [rounded(r) for r in t]
    reference = {
        "seed": args.seed,
        "torch": torch.__version__,
        "pixel_shape": list(pixels.shape),
        "pixel_formula": clip_fixture.PIXEL_FORMULA,
        "pixel_sum": float(pixels.double().sum()),
        "texts": TEXTS,
        "input_ids": input_ids.tolist(),
        "attention_mask": attention_mask.tolist(),
        "image_embeds": rounded(image_embeds),
        "text_embeds": rounded(text_embeds),
        "image_tokens": rounded(image_tokens),
        "text_tokens": rounded(text_tokens),
        "logit_scale": float(model.logit_scale),
        "logit_bias": float(model.logit_bias),
        "logits_per_image": rounded(logits_per_image),
        "sigmoid_loss_first_two": float(loss),
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main()
