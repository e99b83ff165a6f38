"""Diffusers models in our commands: tiny random models built from configs and saved with
save_pretrained (no downloads), checked step by step against diffusers' own schedulers."""

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from conftest import make_idx_folder  # noqa: E402
from mnistdiff import load_checkpoint  # noqa: E402
from mnistdiff.cli import main  # noqa: E402
from mnistdiff.external.diffusers import read_scheduler  # noqa: E402
from mnistdiff.external.stable_diffusion import invert_latents, load_stable_diffusion  # noqa: E402
from mnistdiff.runtime import fit_threads_to_load  # noqa: E402
from mnistdiff.samplers import ddpm_step, levels, sample_ddim  # noqa: E402

T = 100  # every DDPM run takes T steps: short, so the report and the DDPM checks stay fast


def _unet(channels: int, side: int, out_channels: int | None = None):
    torch.manual_seed(channels * side)
    return diffusers.UNet2DModel(sample_size=side, in_channels=channels, out_channels=out_channels or channels,
                                 block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=8,
                                 down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D"))


def _tokenizer(folder: Path):
    """A CLIP tokenizer from a tiny vocabulary, as transformers' own tokenizer tests write one."""
    vocab = ["l", "o", "w", "e", "r", "s", "t", "i", "d", "n", "lo", "l</w>", "w</w>", "r</w>", "t</w>", "low</w>",
             "er</w>", "lowest</w>", "newer</w>", "wider", "<unk>", "<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\nl o\nlo w</w>\ne r</w>\n")
    return transformers.CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77), \
        len(vocab)


def _stable_diffusion(root: Path):
    tokenizer, vocab_size = _tokenizer(root / "vocab")
    torch.manual_seed(0)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_size=32, intermediate_size=37, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=vocab_size))
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        norm_num_groups=8, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32, attention_head_dim=4)
    vae = diffusers.AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4,
                                  down_block_types=("DownEncoderBlock2D",) * 2, norm_num_groups=8,
                                  up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16)
    # Stable Diffusion 1.5's scheduler settings, on T levels.
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=T, beta_start=0.00085, beta_end=0.012,
                                        beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                                        steps_offset=1)
    return diffusers.StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text, tokenizer=tokenizer,
                                             scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                             requires_safety_checker=False)


@pytest.fixture(scope="session")
def folders(tmp_path_factory) -> dict[str, Path]:
    """Saved models: a 1x28x28 DDPM pipeline (eps), a bare 3x32x32 UNet2DModel predicting v with its
    scheduler_config.json beside it, a 1x28x28 one predicting x0 with its scheduler in scheduler/, a
    tiny Stable Diffusion pipeline, and a small data set holding every digit class."""
    fit_threads_to_load()  # as the commands do: on busy cores a second spinning thread stalls both
    root = tmp_path_factory.mktemp("diffusers")
    diffusers.DDPMPipeline(unet=_unet(1, 28), scheduler=diffusers.DDPMScheduler(num_train_timesteps=T)).save_pretrained(
        root / "ddpm28", safe_serialization=True)
    _unet(3, 32).save_pretrained(root / "rgb32", safe_serialization=True)
    diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="squaredcos_cap_v2",
                            prediction_type="v_prediction").save_pretrained(root / "rgb32")
    _unet(1, 28, out_channels=2).save_pretrained(root / "x0-28", safe_serialization=True)  # with a learned variance
    diffusers.DDPMScheduler(num_train_timesteps=T, beta_schedule="scaled_linear", beta_start=0.001, beta_end=0.03,
                            prediction_type="sample").save_pretrained(root / "x0-28" / "scheduler")
    _stable_diffusion(root).save_pretrained(root / "sd", safe_serialization=True)
    return {"ddpm28": root / "ddpm28", "rgb32": root / "rgb32", "x0-28": root / "x0-28", "sd": root / "sd",
            "data": make_idx_folder(root / "data", n=120)}


def _reference(folder: Path, cls, **overrides):
    config = json.loads(next(p for p in (folder / "scheduler_config.json", folder / "scheduler" / "scheduler_config.json")
                             if p.is_file()).read_text())
    return cls.from_config(config, **overrides)


def _raw_unet(folder: Path):
    return diffusers.UNet2DModel.from_pretrained(folder / "unet" if (folder / "unet").is_dir() else folder)


@pytest.mark.parametrize("name", ["ddpm28", "rgb32", "x0-28"])
def test_our_ddim_trajectory_equals_diffusers_ddim_scheduler_loop(folders, name):
    model, schedule, config = load_checkpoint(folders[name])
    c, side = config["unet"]["in_channels"], config["unet"]["image_size"]
    unet = _raw_unet(folders[name])
    ref = _reference(folders[name], diffusers.DDIMScheduler, set_alpha_to_one=True, steps_offset=0,
                     timestep_spacing="leading", clip_sample=False)
    ref.set_timesteps(10)
    grid = levels(10, schedule)
    assert ref.timesteps.tolist() == grid[:-1]
    x_T = torch.randn((2, c, side, side), generator=torch.Generator().manual_seed(1))
    ours = []
    sample_ddim(model, x_T, schedule, grid, callback=lambda t, x, x0: ours.append(x))
    # An x0 prediction reaches eps divided by sqrt(1 - alpha_bar), 0.03 at t = 0: float32 rounding grows 30 times.
    atol = 1e-4 if name == "x0-28" else 1e-5
    x = x_T
    with torch.no_grad():
        for step, t in enumerate(ref.timesteps):
            x = ref.step(unet(x, t).sample[:, :c], t, x).prev_sample
            torch.testing.assert_close(ours[step], x, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("name", ["ddpm28", "rgb32"])
def test_our_ddpm_step_equals_diffusers_ddpm_scheduler_step(folders, name):
    model, schedule, config = load_checkpoint(folders[name])
    c, side = config["unet"]["in_channels"], config["unet"]["image_size"]
    unet = _raw_unet(folders[name])
    ref = _reference(folders[name], diffusers.DDPMScheduler, clip_sample=False)
    ref.set_timesteps(T)
    x = torch.randn((2, c, side, side), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for t in (T - 1, T // 2, 1, 0):
            tt = torch.full((2,), t)
            expected = ref.step(unet(x, tt).sample, t, x, generator=torch.Generator().manual_seed(t)).prev_sample
            noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(t))
            torch.testing.assert_close(ddpm_step(x, model(x, tt), schedule, t, noise), expected, atol=1e-5, rtol=1e-4)


def test_betas_come_from_the_scheduler_config(folders, tmp_path):
    path = tmp_path / "scheduler_config.json"
    betas = [0.01 * (i + 1) for i in range(5)]
    path.write_text(json.dumps({"_class_name": "DDPMScheduler", "num_train_timesteps": 5, "trained_betas": betas}))
    schedule, prediction, _ = read_scheduler(diffusers, path)
    assert prediction == "epsilon"
    torch.testing.assert_close(schedule.betas, torch.tensor(betas, dtype=torch.float64), atol=1e-7, rtol=0)
    _, schedule, _ = load_checkpoint(folders["rgb32"])
    assert schedule.T == T and schedule.betas.dtype == torch.float64
    torch.testing.assert_close(schedule.betas, _reference(folders["rgb32"], diffusers.DDPMScheduler).betas.double())


@pytest.fixture(scope="session")
def stable_diffusion(folders):
    return load_stable_diffusion(folders["sd"], prompt="lower newer")


def test_latent_inversion_equals_diffusers_ddim_inverse_scheduler(stable_diffusion):
    sd = stable_diffusion
    pictures = torch.rand((2, 3, 16, 16), generator=torch.Generator().manual_seed(3)) * 2 - 1
    latents = sd.encode(pictures)
    with torch.no_grad():
        expected_latents = sd.pipe.vae.encode(pictures).latent_dist.mean * sd.pipe.vae.config.scaling_factor
        condition = sd.pipe.encode_prompt("lower newer", "cpu", 1, False)[0].expand(2, -1, -1)
        inverse = diffusers.DDIMInverseScheduler.from_config(sd.pipe.scheduler.config)
        inverse.set_timesteps(10)
        x = latents
        for t in inverse.timesteps:
            x = inverse.step(sd.pipe.unet(x, t, encoder_hidden_states=condition).sample, t, x).prev_sample
    torch.testing.assert_close(latents, expected_latents)
    assert sd.levels(10) == [91, 81, 71, 61, 51, 41, 31, 21, 11, 1, 0]  # leading spacing, offset 1, alpha_bar[0] last
    torch.testing.assert_close(invert_latents(sd.model, latents, sd.schedule, sd.levels(10)), x, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(sd.invert(pictures, 10), x, atol=1e-4, rtol=1e-4)

    decoder = diffusers.DDIMScheduler.from_config(sd.pipe.scheduler.config)
    decoder.set_timesteps(10)
    with torch.no_grad():
        for t in decoder.timesteps:
            x = decoder.step(sd.pipe.unet(x, t, encoder_hidden_states=condition).sample, t, x).prev_sample
        expected_pictures = sd.pipe.vae.decode(x / sd.pipe.vae.config.scaling_factor).sample
    torch.testing.assert_close(sd.decode(sd.invert(pictures, 10), 10), expected_pictures, atol=1e-4, rtol=1e-4)


def test_stable_diffusion_merge_ends_are_the_reconstructions(stable_diffusion):
    a, b = (torch.rand((1, 3, 16, 16), generator=torch.Generator().manual_seed(s)) * 2 - 1 for s in (4, 5))
    result = stable_diffusion.merge(a, b, [0.0, 0.5, 1.0], rule="slerp", steps=4)
    assert result["latent_mix"].shape == (3, 1, 3, 16, 16)
    torch.testing.assert_close(result["latent_mix"][0], result["recon_a"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result["latent_mix"][2], result["recon_b"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(result["pixel_mix"][1], (a + b) / 2)


def _run(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_invert_and_merge_run_on_a_stable_diffusion_pipeline(folders, tmp_path, capsys):
    from PIL import Image

    png = tmp_path / "five.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 19, 3), dtype=np.uint8)).save(png)
    common = ["--checkpoint", folders["sd"], "--steps", "3", "--data-dir", folders["data"], "--prompt", "lower"]
    assert main(["invert", "1", str(png), *map(str, common), "--out", str(tmp_path / "z.npz")]) == 0
    saved = np.load(tmp_path / "z.npz")
    assert saved["latents"].shape == (2, 4, 8, 8) and str(saved["prompt"]) == "lower"  # png: 19x20 -> 16x16 (x 1/2)
    assert main(["invert", "--decode", str(tmp_path / "z.npz"), *map(str, common), "--out", str(tmp_path / "d.png")]) == 0
    assert main(["merge", "1", str(png), *map(str, common), "--rule", "slerp", "--weights", "0,0.5,1",
                 "--out", str(tmp_path / "merge.png")]) == 0
    assert Image.open(tmp_path / "merge.png").size[0] > 100
    code, err = _run(capsys, "merge", "1", "2", "--checkpoint", folders["ddpm28"], "--prompt", "x", "--steps", "2",
                     "--data-dir", folders["data"], "--out", tmp_path / "m.png")
    assert code == 2 and "--prompt" in err


@pytest.mark.parametrize("name", ["ddpm28", "rgb32"])
def test_every_command_runs_on_a_diffusers_folder(folders, name, tmp_path):
    ckpt, data = str(folders[name]), str(folders["data"])
    common = ["--checkpoint", ckpt, "--data-dir", data]
    assert main(["sample", "--checkpoint", ckpt, "--n", "3", "--steps", "3", "--out", str(tmp_path / "s.png"),
                 "--npz", str(tmp_path / "s.npz")]) == 0
    shape = (1, 28, 28) if name == "ddpm28" else (3, 32, 32)
    assert np.load(tmp_path / "s.npz")["images"].shape == (3, *shape)
    assert main(["sample", "--checkpoint", ckpt, "--sampler", "ddpm", "--n", "1", "--out", str(tmp_path / "p.png")]) == 0
    assert main(["invert", "0", "1", *common, "--steps", "3", "--out", str(tmp_path / "z.npz")]) == 0
    assert np.load(tmp_path / "z.npz")["latents"].shape == (2, *shape)
    assert main(["invert", "--decode", str(tmp_path / "z.npz"), *common, "--steps", "3",
                 "--out", str(tmp_path / "d.png")]) == 0
    assert main(["merge", "0", "1", *common, "--steps", "3", "--weights", "0,1", "--out", str(tmp_path / "m.png")]) == 0
    assert main(["reconstruction", *common, "--n", "2", "--steps", "2,3", "--out", str(tmp_path / "r")]) == 0
    for kind, images in (("forward", ["0"]), ("interpolate", ["0", "1"]), ("trajectory", [])):
        assert main(["figure", kind, *images, *common, "--steps", "3", "--frames", "3", "--n", "2",
                     "--out", str(tmp_path / kind)]) == 0


def test_what_needs_the_classifier_says_in_one_line_what_it_skipped(folders, tmp_path, capsys):
    data = ["--data-dir", folders["data"]]
    for argv in (["fid", "--n", "10", "--steps", "2", *data], ["merge-study", "--per-class", "1", "--steps", "2", *data],
                 ["eval-grid", "--n", "2", "--steps", "2", "--out", tmp_path / "g"]):
        code, err = _run(capsys, *argv, "--checkpoint", folders["rgb32"])
        assert code == 2 and "3x32x32" in err and "classifier" in err and err.count("\n") == 1
    assert main(["fid", "--checkpoint", str(folders["ddpm28"]), "--n", "10", "--steps", "2",
                 "--data-dir", str(folders["data"])]) == 0


@pytest.fixture(scope="session")
def reports(folders, tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """The report, with tiny counts, on the 1x28x28 and the 3x32x32 model: (folder, summary) each."""
    from mnistdiff.report import QUICK, build_report

    tiny = replace(QUICK, name="tiny", fid_images=10, headline_images=10, ddpm_images=10, timing_batch=2,
                   timing_repeats=2, reconstruction_images=2, reconstruction_steps=(2,), merge_per_class=1,
                   trajectory_images=2, ddim_steps=3, precision="fp32")
    out = {}
    for name in ("ddpm28", "rgb32"):
        folder = tmp_path_factory.mktemp(f"report-{name}")
        out[name] = folder, build_report(folder, folders[name], tiny, device="cpu", data_dir=folders["data"],
                                         progress=False)
    return out


@pytest.mark.parametrize("name", ["ddpm28", "rgb32"])
def test_the_report_runs_on_a_diffusers_model(folders, reports, name):
    folder, summary = reports[name]
    page = (folder / "index.html").read_text()
    assert summary["provenance"]["model"] == str(folders[name])
    for figure in ("forward.png", "samples-ddpm.png", "denoising.gif", "merge-2-5-slerp.png"):
        assert (folder / figure).is_file()
    if name == "ddpm28":
        assert summary["fid"][0]["label"] == f"DDPM-{T}" and "left out" not in page
    else:  # the classifier reads 1x28x28 digits: FID and the merge study say why they are not there
        assert summary["fid"] == [] and page.count("this model makes 3x32x32 images") == 2


def test_two_reports_side_by_side_on_one_page(reports):
    import runpy

    compare = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "compare_reports.py"))["compare"]
    page = compare([reports["ddpm28"][0], reports["rgb32"][0]])
    fid = reports["ddpm28"][1]["fid"][1]
    assert f"| {fid['label']} | {fid['fid_test']:.3f} (floor {fid['floor_fid_test']:.3f}) | left out |" in page
    two_five = reports["ddpm28"][1]["two_plus_five_to_eight"]["slerp"]
    assert f"| slerp | {two_five[0]}/{two_five[1]} | left out |" in page


def test_the_explorer_serves_a_diffusers_mnist_model_and_refuses_other_shapes(folders):
    from mnistdiff.explore import Explorer

    explorer = Explorer.from_checkpoint(folders["ddpm28"], data_dir=folders["data"], device="cpu")
    digit = explorer.digits(0, 2)
    assert len(explorer.invert(digit[0]["pixels"], steps=3)["reconstruction"]) == 784
    assert len(explorer.mix(digit[0]["pixels"], digit[1]["pixels"], "slerp", 0.5, steps=3)["image"]) == 784
    assert len(explorer.sample(seed=0, sampler="ddim", steps=3, eta=0.0, n=2)["images"]) == 2
    with pytest.raises(ValueError, match="3x32x32"):
        Explorer.from_checkpoint(folders["rgb32"], data_dir=folders["data"], device="cpu")


def _broken(folders, tmp_path, name: str) -> Path:
    folder = tmp_path / name
    shutil.copytree(folders["ddpm28"], folder)
    return folder


def _no_config(folder: Path) -> Path:
    (folder / "unet" / "config.json").unlink()
    return folder / "unet" / "config.json"


def _wrong_shapes(folder: Path) -> Path:
    config = json.loads((folder / "unet" / "config.json").read_text())
    config["block_out_channels"] = [16, 32]
    (folder / "unet" / "config.json").write_text(json.dumps(config))
    return folder / "unet" / "diffusion_pytorch_model.safetensors"


def _missing_weights(folder: Path) -> Path:
    from safetensors.torch import load_file, save_file

    path = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights = load_file(path)
    weights.pop(sorted(weights)[0])
    save_file(weights, path)
    return path


def _pickled(folder: Path) -> Path:
    shutil.rmtree(folder / "unet")
    _unet(1, 28).save_pretrained(folder / "unet", safe_serialization=False)
    return folder / "unet" / "diffusion_pytorch_model.bin"


def _unknown_prediction(folder: Path) -> Path:
    path = folder / "scheduler" / "scheduler_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"prediction_type": "flow"}))
    return path


@pytest.mark.parametrize("damage, says", [(_no_config, "missing"), (_wrong_shapes, "cannot be loaded"),
                                          (_missing_weights, "1 missing keys"),
                                          (_pickled, "safe_serialization=True"), (_unknown_prediction, "'flow'")])
def test_bad_folders_give_one_line_errors_naming_the_file(folders, tmp_path, capsys, damage, says):
    folder = _broken(folders, tmp_path, damage.__name__)
    path = damage(folder)
    code, err = _run(capsys, "sample", "--checkpoint", folder, "--n", "1", "--steps", "2", "--out", tmp_path / "s.png")
    assert code == 2 and err.count("\n") == 1 and str(path) in err and says in err, err


def test_without_diffusers_the_command_says_what_to_install(folders, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "diffusers", None)
    code, err = _run(capsys, "sample", "--checkpoint", folders["ddpm28"], "--n", "1", "--out", tmp_path / "s.png")
    assert code == 2 and "pip install 'mnistdiff[diffusers]'" in err
