"""What the command line does before and around a subcommand: threads for the machine's load, Ctrl-C."""

import os

from mnistdiff import cli


def test_threads_follow_the_free_cores_unless_the_user_set_them(monkeypatch):
    import torch

    from mnistdiff import runtime
    from mnistdiff.runtime import fit_threads_to_load

    assert 0 <= runtime.busy_cores() <= os.cpu_count()  # measured, on Linux
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    for busy, threads in ((0.0, 4), (1.2, 3), (3.6, 1), (9.0, 1)):
        monkeypatch.setattr(runtime, "busy_cores", lambda busy=busy: busy)
        assert fit_threads_to_load() == threads
    assert chosen == [4, 3, 1, 1]
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert fit_threads_to_load() == 4 and len(chosen) == 4  # the user's setting stands


def test_every_command_fits_its_threads_to_the_load_first(monkeypatch):
    import torch

    from mnistdiff import runtime

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    chosen, seen = [], []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    monkeypatch.setitem(cli.COMMANDS, "sample", lambda args: seen.append(list(chosen)))
    assert cli.main(["sample"]) == 0
    assert seen == [[1]]  # set before the command ran


def test_ctrl_c_says_interrupted(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "sample", interrupted)
    assert cli.main(["sample"]) == 130
    assert capsys.readouterr().err.strip() == "mnistdiff: interrupted"


def test_report_size_comes_from_quick_or_full():
    from mnistdiff.cli.parser import build_parser

    parser = build_parser()
    assert [parser.parse_args(["report", *flag]).size for flag in ([], ["--quick"], ["--full"])] == \
        ["quick", "quick", "full"]


def test_shared_options_read_alike_in_every_command():
    from mnistdiff.cli.parser import build_parser

    parser = build_parser()
    for command in ("sample", "fid", "eval-grid", "nfe-curve", "bench", "report", "explore", "merge", "figure"):
        args = parser.parse_args([command, *(["forward"] if command == "figure" else []),
                                  *(["0", "1"] if command == "merge" else []), "--checkpoint", "somewhere"])
        assert args.checkpoint == "somewhere"
    assert parser.parse_args(["merge", "0", "1"]).weights == [0.0, 0.2, 0.4, 0.5, 0.6, 0.8, 1.0]
    assert parser.parse_args(["reconstruction"]).steps == [10, 20, 50, 100, 200, 500, 1000]
