"""The report subcommand: every part of the report on one page."""

from __future__ import annotations

from pathlib import Path


def cmd_report(args) -> None:
    from dataclasses import replace

    from mnistdiff.report import SIZES, build_report
    from mnistdiff.report.page import print_summary

    settings = replace(SIZES[args.size], precision=args.precision, compile=args.compile)
    summary = build_report(args.out, args.checkpoint, settings, device=args.device,
                           data_dir=args.data_dir, force=args.force, command=args.command_line,
                           conditional_checkpoint=args.conditional_checkpoint,
                           student_checkpoint=args.student_checkpoint)
    print_summary(summary, Path(args.out))
