"""The `mnistdiff` command: parses arguments and calls the library, nothing more."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from mnistdiff.runtime import fit_threads_to_load, keep_freed_memory
from mnistdiff.cli import commands, experiment_commands, explore_command, report_command
from mnistdiff.cli.arguments import UsageError
from mnistdiff.cli.parser import build_parser
from mnistdiff.data import DataFileError
from mnistdiff.evaluation.inception import InceptionUnavailable
from mnistdiff.files import NoSpace
from mnistdiff.loading import SHIPPED, CheckpointError

COMMANDS = {
    "train": commands.cmd_train,
    "distill": commands.cmd_distill,
    "trajectories": commands.cmd_trajectories,
    "sample": commands.cmd_sample,
    "fid": commands.cmd_fid,
    "eval-grid": commands.cmd_eval_grid,
    "nfe-curve": commands.cmd_nfe_curve,
    "export": commands.cmd_export,
    "plot-fid": commands.cmd_plot_fid,
    "train-classifier": commands.cmd_train_classifier,
    "reference-stats": commands.cmd_reference_stats,
    "bench": commands.cmd_bench,
    "invert": experiment_commands.cmd_invert,
    "merge": experiment_commands.cmd_merge,
    "figure": experiment_commands.cmd_figure,
    "reconstruction": experiment_commands.cmd_reconstruction,
    "merge-study": experiment_commands.cmd_merge_study,
    "explore": explore_command.cmd_explore,
    "report": report_command.cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parser.parse_args(argv)
        args.command_line = shlex.join(["mnistdiff", *argv])  # recorded beside shipped files
        if getattr(args, "checkpoint", None) and args.checkpoint not in SHIPPED and not Path(args.checkpoint).exists():
            raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist")
        fit_threads_to_load()  # on a shared CPU, spinning OpenMP threads on busy cores stall each other
        keep_freed_memory()  # freed activations are reused, not faulted in afresh (runtime.py)
        COMMANDS[args.command](args)
    except (UsageError, ValueError, FileNotFoundError, FileExistsError, DataFileError, InceptionUnavailable,
            CheckpointError, NoSpace) as err:
        print(f"mnistdiff: error: {err}", file=sys.stderr)
        return 2
    except commands.Stopped as err:
        print(f"mnistdiff: {err}", file=sys.stderr)
        return err.status
    except KeyboardInterrupt as err:
        print(f"mnistdiff: {str(err) or 'interrupted'}", file=sys.stderr)
        return 130
    return 0
