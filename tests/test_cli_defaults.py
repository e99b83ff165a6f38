"""What the command line does before and around a subcommand: OpenMP's wait policy, Ctrl-C."""

import os
import subprocess
import sys

from mnistdiff import cli


def _policy_after_import(env_policy):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    out = subprocess.run([sys.executable, "-c", "import os, mnistdiff; print(os.environ['OMP_WAIT_POLICY'])"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_makes_openmp_wait_passively_unless_the_user_said_otherwise():
    assert _policy_after_import(None) == "PASSIVE"
    assert _policy_after_import("ACTIVE") == "ACTIVE"


def test_ctrl_c_says_interrupted(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "sample", interrupted)
    assert cli.main(["sample"]) == 130
    assert capsys.readouterr().err.strip() == "mnistdiff: interrupted"
