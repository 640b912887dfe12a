"""GPU check: the real-model path in half precision on one CUDA GPU, with tiny models.

Builds a tiny SDXL base, refiner, IP-Adapter and CLIP from configs (saved to a temporary
folder and loaded back as a user's models are), then on the GPU in float16:

1. textual inversion with autocast, a gradient scaler and gradient checkpointing: the
   token's vectors are finite and moved, no other row changed, the pipeline is float16 again;
2. a movie drawn with that token, fact-first prompts, character references (IP-Adapter)
   and the base-to-refiner handoff: finite frames, the adapter taken out after;
3. the models of the diffusion stages let go when the next stage loads its own: GPU memory
   goes back near where it started;
4. the faithfulness gate: the CLIP verifier on those frames, and the pixel verifier catching
   a frame planted with a wrong colour.

Prints "ok ..." per check and the total time (meant to take well under 5 minutes); exits
nonzero at the first failure. ``--device cpu --dtype float32`` runs the same checks on a
machine without a GPU (a dry run of the script, not of the GPU).

    python bench/gpu_check.py [--device cuda] [--dtype float16]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def ok(what: str, t0: float) -> None:
    print(f"ok  {what}  ({time.perf_counter() - t0:.1f} s)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="float16")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing checked (try --device cpu --dtype float32 for a dry run)")
        return 2
    from dreamframe_assets.core.params import (
        FaithfulnessParams,
        IPAdapterParams,
        KeyframesParams,
        StyleBanksParams,
        TextualInversionParams,
    )
    from dreamframe_assets.evaluate.faithfulness import check, make_verifiers
    from dreamframe_assets.models import device as models_device
    from dreamframe_assets.models import diffusion as dd
    from dreamframe_assets.qa.offline import OfflineQAWriter
    from dreamframe_assets.render.diffusion import DiffusionRenderer
    from dreamframe_assets.render.offline import OfflineRenderer, render_frame
    from dreamframe_assets.story.offline import OfflineStoryWriter
    from dreamframe_assets.style.offline import OfflineStyleLearner
    from dreamframe_assets.style.textual_inversion import TextualInversionLearner
    from tests.models.test_clip import _tiny_clip
    from tests.tiny_diffusion import build_tiny_ip_adapter, build_tiny_sdxl, build_tiny_sdxl_refiner, dparams

    start = time.perf_counter()
    dtype = getattr(torch, args.dtype)
    with tempfile.TemporaryDirectory(prefix="dreamframe-gpu-check-") as tmp:
        tmp = Path(tmp)
        base, refiner = build_tiny_sdxl(tmp / "sdxl"), build_tiny_sdxl_refiner(tmp / "refiner")
        adapter, clip = build_tiny_ip_adapter(tmp / "ip-adapter", base), _tiny_clip(tmp / "clip")
        ok("tiny SDXL, refiner, IP-Adapter and CLIP built", start)
        diffusion = dparams(base, device=args.device, dtype=args.dtype, steps=4, refiner=str(refiner))
        plot = OfflineStoryWriter().write("A lighthouse keeper finds a message in a bottle during a winter storm",
                                          "m0", 0, 2, 2, 3)  # 12 frames, 3 characters, colour QAs

        # 1. textual inversion in half precision
        t0 = time.perf_counter()
        cuda = args.device.startswith("cuda")
        baseline = torch.cuda.memory_allocated() if cuda else 0
        models_device.enter_stage("style_banks")
        pipe = dd.load_pipeline(diffusion)
        assert pipe.unet.dtype == dtype, pipe.unet.dtype
        before = [te.get_input_embeddings().weight.detach().float().cpu().clone() for _, _, te in dd.text_encoders(pipe)]
        learner = TextualInversionLearner(StyleBanksParams(
            learner="textual_inversion", diffusion=diffusion,
            textual_inversion=TextualInversionParams(steps=8, gradient_accumulation=2, resolution=64,
                                                     gradient_checkpointing=True)))
        _, style = learner.learn(plot.movie, references=2, size=64, seed=0)
        for (name, tokenizer, te), weight in zip(dd.text_encoders(pipe), before):
            vector = style.embeddings[name]
            init = weight[tokenizer(plot.movie.style_keyword, add_special_tokens=False).input_ids].mean(0).numpy()
            assert np.isfinite(vector).all() and not np.allclose(vector, init, atol=1e-4), f"{name}: token did not train"
            after = te.get_input_embeddings().weight.detach().float().cpu()
            assert after.shape == weight.shape and torch.equal(after, weight), f"{name}: another row changed"
            assert te.dtype == dtype and not te.get_input_embeddings().weight.requires_grad, f"{name}: not restored"
        del te, tokenizer  # the loop's last text encoder: no reference may outlive the check of step 3
        assert not pipe.unet.is_gradient_checkpointing, "gradient checkpointing left on"
        ok(f"textual inversion in {args.dtype} (autocast, gradient scaler, checkpointing): token trained, "
           "no other row changed, pipeline restored", t0)

        # 2. a movie: the token, fact-first prompts, character references, base -> refiner
        t0 = time.perf_counter()
        models_device.enter_stage("keyframes")
        renderer = DiffusionRenderer(KeyframesParams(
            renderer="diffusion", diffusion=diffusion,
            ip_adapter=IPAdapterParams(model=str(adapter), subfolder="", weight_name="ip_adapter.safetensors")))
        drawn = renderer.render_movie(plot, style, 64, 64, seed=0)
        assert len(drawn.images) == len(plot.frames) and len(drawn.references) == len(plot.movie.characters)
        assert all(img.shape == (64, 64, 3) and 0 < img.std() for img in drawn.images), "blank or broken frames"
        assert pipe.unet.encoder_hid_proj is None, "the IP-Adapter was left in the pipeline"
        alone = renderer.render(plot, style, 64, 64, seed=0, indices=[1])[0]
        assert np.abs(alone.astype(int) - drawn.images[1].astype(int)).mean() < 2.0, "a frame alone is another picture"
        ok(f"{len(drawn.images)} frames with the style token, {len(drawn.references)} character references and "
           "the refiner handoff: finite, one frame redrawn alone matches", t0)

        # 3. the next stage loads its model (CLIP): the diffusion stages' models are let go first
        t0 = time.perf_counter()
        held = torch.cuda.memory_allocated() if cuda else 0
        diffusion_keys = set(models_device._LOADED)
        del pipe
        models_device.enter_stage("qa_pairs")
        qas = list(OfflineQAWriter().write(plot, 1.0, 1.0, 0).qas)
        verifiers = make_verifiers(FaithfulnessParams(clip_model=str(clip), device=args.device), ["clip"])
        _, stats = check(plot, qas, drawn.images, verifiers)  # loads CLIP
        kept = diffusion_keys & set(models_device._LOADED)
        assert not [k for k in kept if k[0] != "backend"], f"still loaded: {kept}"
        if cuda:
            now = torch.cuda.memory_allocated()
            assert now < held and now - baseline < (held - baseline) / 2, (baseline, held, now)
            ok(f"base, refiner and image encoder let go when CLIP loads: GPU memory {held / 2**20:.1f} -> "
               f"{now / 2**20:.1f} MiB (before any model: {baseline / 2**20:.1f})", t0)
        else:
            ok("base, refiner and image encoder let go when CLIP loads", t0)

        # 4. the faithfulness gate
        t0 = time.perf_counter()
        checked = sum(c["checked"] for c in stats["clip"].values())
        assert checked > 0, stats
        offline_style = OfflineStyleLearner().learn(plot.movie, 1, 32, 0)[1]
        images = OfflineRenderer().render(plot, offline_style, 128, 128, 0)
        colour = next(q for q in qas if q.qtype == "colour")
        k = colour.evidence_frames[0]
        cast = {c.char_id: dataclasses.replace(c, clothing_colour=colour.options[(colour.answer_index + 1) % 4])
                for c in plot.movie.characters}
        planted = list(images)
        planted[k] = render_frame(plot.frames[k], cast, offline_style, 128, 128, k)
        unfaithful, _ = check(plot, [colour], planted, make_verifiers(FaithfulnessParams(), ["pixel"]))
        assert colour.qa_id in unfaithful, "the planted colour was not caught"
        ok(f"faithfulness: clip judged {checked} grounded QAs on the GPU frames; pixel caught the planted colour", t0)

    print(f"all checks passed in {time.perf_counter() - start:.1f} s on {args.device} ({args.dtype})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
