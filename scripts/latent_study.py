"""How far inverted latents and their merges sit from the noise the model samples from, for plain and
refined DDIM inversion, and how close each "2 + 5" mix comes to the inverted latents of real 8s.

    python scripts/latent_study.py [--checkpoint RUN] [--steps 10] [--iterations 0,5] [--per-class 20]
        [--data-dir DIR] [--out latent-study]

Writes OUT.json and OUT.md (experiments/latents.py: latent_study and its table). The merge study under
the refined inversion is `mnistdiff merge-study --inversion-iterations K`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mnistdiff import data, load_checkpoint
from mnistdiff.experiments.latents import latent_study, to_markdown
from mnistdiff.provenance import git_commit
from mnistdiff.samplers import levels


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", help="run or checkpoint folder (default: the shipped model)")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps of the inversion")
    p.add_argument("--iterations", default="0,5", help="refinements K to compare, comma-separated (0: plain)")
    p.add_argument("--per-class", type=int, default=20, help="test digits of each class")
    p.add_argument("--weight", type=float, default=0.5, help="mixing weight of the second digit")
    p.add_argument("--seed", type=int, default=0, help="seed of the choice of digits and of the reference noise")
    p.add_argument("--data-dir", help="folder with the IDX files (else $MNISTDIFF_DATA, else the cache)")
    p.add_argument("--out", default="latent-study", help="writes OUT.json and OUT.md")
    args = p.parse_args(argv)
    model, schedule, config = load_checkpoint(args.checkpoint)
    images, labels = data.load(config["dataset"], "test", args.data_dir)
    study = latent_study(model, schedule, images, labels, levels(args.steps, schedule),
                         iterations=[int(k) for k in args.iterations.split(",")], weight=args.weight,
                         per_class=args.per_class, seed=args.seed)
    study["command"] = (f"python scripts/latent_study.py --steps {args.steps} --iterations {args.iterations} "
                        f"--per-class {args.per_class} --weight {args.weight} --seed {args.seed}"
                        + (f" --checkpoint {args.checkpoint}" if args.checkpoint else ""))
    study["commit"] = git_commit()
    Path(args.out + ".json").write_text(json.dumps(study, indent=1) + "\n")
    Path(args.out + ".md").write_text(to_markdown(study) + f"\n`{study['command']}`\n")
    print(to_markdown(study))


if __name__ == "__main__":
    main()
