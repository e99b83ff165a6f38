"""The explorer's model operations, against known answers, and its command without a web library."""

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import mnistdiff
from exact import GaussianData
from explore_support import fixture_digits, folder_with_test_set, tiny_checkpoint, tiny_explorer
from mnistdiff.cli import main
from mnistdiff.cli.parser import build_parser
from mnistdiff.data import to_model_range, to_uint8
from mnistdiff.diffusion import ScheduleConfig, make_schedule
from mnistdiff.evaluation import load_classifier
from mnistdiff.explore import Explorer, service
from mnistdiff.samplers import DEFAULT_GUIDANCE

SCHEDULE = make_schedule(ScheduleConfig())
IMAGES, LABELS = fixture_digits()
A, B = IMAGES[0].flatten().tolist(), IMAGES[1].flatten().tolist()


class OnePoint(nn.Module):
    """The exact noise predictor of a data set holding the one image `point` (tests/exact.py)."""

    def __init__(self, point: torch.Tensor):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)  # gives the explorer a device
        self.exact = GaussianData(SCHEDULE, point, 0.0)

    def forward(self, xt, t):
        return self.exact(xt, t)


@pytest.fixture(scope="module")
def explorer():
    return tiny_explorer()


@pytest.fixture(scope="module")
def point():
    return to_model_range(IMAGES[2])  # (1, 28, 28) in [-1, 1]


@pytest.fixture(scope="module")
def exact(point):
    return Explorer(OnePoint(point), SCHEDULE, load_classifier("mnist")[0])


def test_every_decode_of_a_one_point_data_set_gives_that_point(exact, point):
    expected = to_uint8(point).flatten().tolist()
    assert exact.invert(A, steps=10)["reconstruction"] == expected
    assert exact.mix(A, B, "slerp", 0.3, steps=10)["image"] == expected
    for sampler in ("ddim", "ddpm"):
        result = exact.sample(seed=1, sampler=sampler, steps=10, eta=0.5, n=2)
        assert result["images"] == [expected, expected], sampler
    # DPM-Solver++ stops at t = 0, as Lu et al., which leaves noise of std sqrt(beta_0): allow 5 of those.
    images = torch.tensor(exact.sample(seed=1, sampler="dpm-solver", steps=10, eta=0.0, n=2)["images"])
    bound = 5 * 127.5 * float(SCHEDULE.betas[0]) ** 0.5
    assert (images - torch.tensor([expected, expected])).abs().max() <= bound


def test_the_trajectory_predicts_the_point_at_every_step_and_ends_at_the_result(exact, point):
    frames = exact.sample(seed=0, sampler="ddim", steps=20, eta=0.0, n=1, trajectory=True)["trajectory"]
    assert len(frames) == service.STRIP + 1
    levels = [f["t"] for f in frames[:-1]]
    assert levels == sorted(set(levels), reverse=True) and levels[0] >= 0.9 * SCHEDULE.T and frames[-1]["t"] == -1
    expected = to_uint8(point).flatten().tolist()
    assert all(f["x0"] == expected for f in frames)
    assert frames[0]["xt"] != expected  # the strip starts from noise


def test_mixing_ends_give_the_reconstructions_and_pixel_mixing_the_images(explorer):
    recon_a, recon_b = (explorer.invert(x, steps=5)["reconstruction"] for x in (A, B))
    for rule in ("linear", "slerp"):
        assert explorer.mix(A, B, rule, 0.0, steps=5)["image"] == recon_a, rule
        assert explorer.mix(A, B, rule, 1.0, steps=5)["image"] == recon_b, rule
    # linear-norm rescales by |a| / |mix|, 1 up to float rounding: a pixel may round the other way.
    for weight, recon in ((0.0, recon_a), (1.0, recon_b)):
        image = torch.tensor(explorer.mix(A, B, "linear-norm", weight, steps=5)["image"])
        assert (image - torch.tensor(recon)).abs().max() <= 1
    assert explorer.mix(A, B, "pixel", 0.0, steps=5)["image"] == A
    assert explorer.mix(A, B, "pixel", 1.0, steps=5)["image"] == B
    half = explorer.mix(A, B, "pixel", 0.5, steps=5)["image"]
    assert half == [round((a + b) / 2 + 1e-9) if (a + b) % 2 == 0 else half[i] for i, (a, b) in enumerate(zip(A, B))]


def test_a_slider_move_decodes_without_inverting_again(monkeypatch):
    explorer = tiny_explorer(digits=False)
    calls = []
    real = service._invert
    monkeypatch.setattr(service, "_invert", lambda *args: calls.append(args[3]) or real(*args))
    for weight in (0.2, 0.4, 0.6):
        explorer.mix(A, B, "slerp", weight, steps=4)
    assert calls == [4, 4]  # A and B once each
    explorer.mix(A, B, "slerp", 0.5, steps=6)
    assert calls == [4, 4, 6, 6]


def test_readings_are_the_classifiers(explorer):
    result = explorer.invert(A, steps=3)
    probs = explorer.classifier(to_model_range(IMAGES[:1])).softmax(1)[0]
    assert result["input_reading"] == {"digit": int(probs.argmax()), "confidence": round(float(probs.max()), 4)}
    assert result["input_reading"]["digit"] == int(LABELS[0])  # the shipped classifier reads a real 7


def test_samples_follow_the_seed(explorer):
    first = explorer.sample(seed=3, sampler="ddim", steps=3, eta=0.0, n=2)["images"]
    assert explorer.sample(seed=3, sampler="ddim", steps=3, eta=0.0, n=2)["images"] == first
    assert explorer.sample(seed=4, sampler="ddim", steps=3, eta=0.0, n=2)["images"] != first


@pytest.mark.parametrize("call, message", [
    (lambda e: e.invert(A[:-1], steps=3), "784 values"),
    (lambda e: e.invert(A[:-1] + [256], steps=3), "0..255"),
    (lambda e: e.invert(A, steps=0), "steps"),
    (lambda e: e.invert(A, steps=service.MAX_STEPS + 1), "steps"),
    (lambda e: e.mix(A, B, "slerp", 2.5, steps=3), "weight"),
    (lambda e: e.mix(A, B, "average", 0.5, steps=3), "rule"),
    (lambda e: e.sample(seed=0, sampler="euler", steps=3, eta=0.0, n=1), "sampler"),
    (lambda e: e.sample(seed=0, sampler="ddim", steps=3, eta=0.0, n=service.MAX_IMAGES + 1), "n must"),
    (lambda e: e.sample(seed=0, sampler="ddpm", steps=3, eta=0.0, n=service.MAX_IMAGES), "image-evaluations"),
])
def test_bad_arguments_are_value_errors(explorer, call, message):
    with pytest.raises(ValueError, match=message):
        call(explorer)


def test_the_picker_serves_test_digits_and_is_empty_without_data(explorer):
    digits = explorer.digits(498, 5)
    assert [d["index"] for d in digits] == [498, 499]
    assert digits[0]["pixels"] == IMAGES[498].flatten().tolist() and digits[0]["label"] == int(LABELS[498])
    assert tiny_explorer(digits=False).digits(0, 5) == [] and tiny_explorer(digits=False).info()["digits"] == 0


def test_from_checkpoint_finds_the_test_set_on_disk_and_never_downloads(tmp_path, monkeypatch):
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    monkeypatch.delenv("MNISTDIFF_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    with_data = Explorer.from_checkpoint(ckpt, data_dir=folder_with_test_set(tmp_path / "data"), device="cpu")
    assert with_data.info()["digits"] == 500
    without = Explorer.from_checkpoint(ckpt, device="cpu")
    assert without.info()["digits"] == 0 and "no test digits" in without.info()["note"]
    assert not (tmp_path / "empty-cache").exists()


def test_the_command_binds_to_this_machine_unless_told():
    args = build_parser().parse_args(["explore"])
    assert (args.host, args.port, args.open) == ("127.0.0.1", 8000, False)


def test_without_the_extra_the_command_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    assert main(["explore"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'mnistdiff[explore]'" in err
    clone = Path(mnistdiff.__file__).resolve().parents[2]  # src/mnistdiff in a clone
    if not (clone / "pyproject.toml").is_file():
        pytest.skip("mnistdiff is installed, not run from a clone")
    monkeypatch.chdir(clone)
    assert main(["explore"]) == 2
    assert "pip install -e '.[explore]' (from this clone" in capsys.readouterr().err
    monkeypatch.chdir(clone / "tests")
    assert main(["explore"]) == 2
    assert f"pip install -e '{clone}[explore]'" in capsys.readouterr().err


class Gaussian(OnePoint):
    """The exact noise predictor of images drawn around `point` with std 0.5 per pixel."""

    def __init__(self, point: torch.Tensor):
        super().__init__(point)
        self.exact = GaussianData(SCHEDULE, point, 0.5)


def test_the_refined_inversion_reconstructs_closer_and_is_the_default(point):
    classifier = load_classifier("mnist")[0]
    plain, refined = (Explorer(Gaussian(point), SCHEDULE, classifier, inversion_iterations=k) for k in (0, 10))
    assert Explorer(Gaussian(point), SCHEDULE, classifier).inversion_iterations == service.INVERSION_ITERATIONS == 2
    plain_mse, refined_mse = (e.invert(A, steps=10)["mse"] for e in (plain, refined))
    assert refined_mse < 0.1 * plain_mse and refined_mse < 1e-4
    with pytest.raises(ValueError, match="inversion_iterations"):
        Explorer(Gaussian(point), SCHEDULE, classifier, inversion_iterations=-1)


class ClassPoints(nn.Module):
    """The exact noise predictor of a conditional data set of one point per label: test digit c for
    label c, and for "no label" (label 10) a digit of its own. Guidance's eps, linear in the points,
    is then the exact eps of the one point s x_c + (1 - s) x_null. Records each call's batch size."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1), requires_grad=False)
        firsts = [int(torch.nonzero(LABELS == c)[0]) for c in range(10)] + [int(torch.nonzero(LABELS == 8)[1])]
        self.points = to_model_range(IMAGES[firsts]).double()  # (11, 1, 28, 28)
        self.config = SimpleNamespace(classes=10)
        self.sizes: list[int] = []

    def forward(self, xt, t, labels=None):
        self.sizes.append(len(xt))
        labels = torch.full((len(xt),), 10) if labels is None else labels
        ab = SCHEDULE.alpha_bar[t].view(-1, 1, 1, 1)
        return ((xt.double() - ab.sqrt() * self.points[labels]) / (1 - ab).sqrt()).to(xt.dtype)


def guided_pixels(model: ClassPoints, label: int, scale: float) -> list[int]:
    return to_uint8(scale * model.points[label] + (1 - scale) * model.points[10]).flatten().tolist()


@pytest.mark.parametrize("scale", [0.0, 1.0, 2.0, 3.0])
def test_a_label_and_guidance_draw_and_decode_the_guided_point(scale):
    model = ClassPoints()
    exact = Explorer(model, SCHEDULE, load_classifier("mnist")[0])
    assert exact.info()["classes"] == 10 and exact.info()["guidance"]["default"] == DEFAULT_GUIDANCE
    expected = guided_pixels(model, 7, scale)
    model.sizes.clear()
    assert exact.sample(seed=3, sampler="ddim", steps=10, eta=0.0, n=2, label=7, guidance=scale)["images"] == \
        [expected, expected]
    assert set(model.sizes) == ({2} if scale in (0.0, 1.0) else {4})  # a doubled batch, one call a step
    assert exact.mix(A, B, "slerp", 0.3, steps=10, label=7, guidance=scale, trajectory=True)["image"] == expected


def test_inversion_and_no_label_run_the_model_with_no_label():
    model = ClassPoints()
    exact = Explorer(model, SCHEDULE, load_classifier("mnist")[0])
    null = guided_pixels(model, 7, 0.0)
    assert exact.sample(seed=3, sampler="ddim", steps=10, eta=0.0, n=1)["images"] == [null]
    assert exact.invert(A, steps=10)["reconstruction"] == null
    assert exact.mix(A, B, "linear", 0.5, steps=10)["image"] == null


@pytest.mark.parametrize("kwargs, words", [
    ({"label": 10}, "label must be a whole number in 0..9"),
    ({"label": -1}, "label must be a whole number in 0..9"),
    ({"label": True}, "label must be a whole number"),
    ({"label": 2, "guidance": 5.5}, "guidance must be in 0..5"),
    ({"label": 2, "guidance": float("nan")}, "guidance must be a finite number"),
    ({"label": 2, "guidance": -1.0}, "guidance must be a finite number"),
    ({"guidance": 2.0}, "guidance needs a label"),
])
def test_bad_labels_and_guidance_are_refused(kwargs, words):
    exact = Explorer(ClassPoints(), SCHEDULE, load_classifier("mnist")[0])
    with pytest.raises(ValueError, match=words):
        exact.sample(0, "ddim", 2, 0.0, 1, **kwargs)
    with pytest.raises(ValueError, match=words):
        exact.mix(A, B, "slerp", 0.5, 2, **kwargs)


def test_an_unconditional_explorer_has_no_labels(explorer):
    assert explorer.info()["classes"] == 0
    with pytest.raises(ValueError, match="this one is unconditional"):
        explorer.sample(0, "ddim", 2, 0.0, 1, label=3)


def test_guidance_counts_twice_against_the_work_bound():
    exact = Explorer(ClassPoints(), SCHEDULE, load_classifier("mnist")[0])
    n = service.MAX_WORK // service.MAX_STEPS
    with pytest.raises(ValueError, match="doubled by guidance"):
        exact.sample(0, "ddim", service.MAX_STEPS, 0.0, n, label=1, guidance=2.0)


def test_the_shipped_conditional_model_is_served_by_its_name(tmp_path, monkeypatch):
    from mnistdiff import loading

    monkeypatch.setitem(loading.SHIPPED, "conditional", Path(__file__).parent / "data" / "tiny-cond-checkpoint")
    explorer = Explorer.from_checkpoint("conditional", data_dir=folder_with_test_set(tmp_path / "data"), device="cpu")
    assert explorer.info()["classes"] == 10 and explorer.name == "conditional (mnist)"


# A distilled student beside the model

class OnePointStudent(OnePoint):
    """The one-point model as a student distilled for 2 steps (DDIM on the trailing grid), counting its calls."""

    config = SimpleNamespace(distilled_steps=2, preconditioning="v")

    def __init__(self, point: torch.Tensor):
        super().__init__(point)
        self.calls = []

    def forward(self, xt, t):
        self.calls.append(int(t[0]))
        return super().forward(xt, t)


def test_the_student_samples_and_decodes_the_mix_in_its_own_calls(point):
    student = OnePointStudent(point)
    exact = Explorer(OnePoint(point), SCHEDULE, load_classifier("mnist")[0], student=student)
    assert exact.info()["student"] == {"steps": 2, "method": "progressive"}
    expected = to_uint8(point).flatten().tolist()
    assert exact.sample(seed=1, sampler="student", steps=2, eta=0.0, n=2)["images"] == [expected, expected]
    assert student.calls == [999, 499]  # the trailing grid of 2 steps
    student.calls.clear()
    assert exact.sample(seed=1, sampler="student", steps=1, eta=0.0, n=1)["images"] == [expected]
    assert student.calls == [999]
    student.calls.clear()
    mixed = exact.mix(A, B, "slerp", 0.3, steps=10, fast=True, trajectory=True)
    assert mixed["image"] == expected and student.calls == [999, 499]  # inversion ran the teacher
    assert [f["t"] for f in mixed["trajectory"]] == [999, 499, -1]


@pytest.mark.parametrize("call, message", [
    (lambda e: e.sample(seed=0, sampler="student", steps=4, eta=0.0, n=1), "distilled for 2 step"),
    (lambda e: e.mix(A, B, "slerp", 0.5, steps=10, fast=True, label=3), "a fast decode takes no label"),
    (lambda e: e.sample(seed=0, sampler="student", steps=2, eta=0.0, n=1, label=3), "samples without a label"),
])
def test_the_student_refuses_more_steps_and_labels(point, call, message):
    exact = Explorer(OnePoint(point), SCHEDULE, load_classifier("mnist")[0], student=OnePointStudent(point))
    with pytest.raises(ValueError, match=message):
        call(exact)


def test_without_a_student_its_sampler_and_fast_decode_are_refused(explorer):
    assert explorer.info()["student"] is None
    with pytest.raises(ValueError, match="has no student"):
        explorer.sample(seed=0, sampler="student", steps=2, eta=0.0, n=1)
    with pytest.raises(ValueError, match="has no student"):
        explorer.mix(A, B, "slerp", 0.5, steps=2, fast=True)
    with pytest.raises(ValueError, match="not a distilled student"):
        Explorer(OnePoint(IMAGES[0].float()), SCHEDULE, load_classifier("mnist")[0], student=OnePoint(IMAGES[0].float()))


def test_a_student_as_the_explorers_model_is_refused():
    with pytest.raises(ValueError, match="fast is a distilled student: the explorer inverts"):
        Explorer.from_checkpoint("fast", device="cpu")
