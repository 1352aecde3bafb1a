"""Nothing calls out at run time: a training (MLflow's tracking included) looks up no host.
MLflow 3 sends usage telemetry (config.mlflow-telemetry.io) unless told not to; under pytest it
keeps quiet by itself (it reads PYTEST_CURRENT_TEST and CI), so the training runs in a process
without those variables, as a shop's would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, socket, sys
looked_up = []
real = socket.getaddrinfo
def spy(host, *args, **kwargs):
    looked_up.append(str(host))
    return real(host, *args, **kwargs)
socket.getaddrinfo = spy
from shelfwise import Shop
from shelfwise.demo import generate_demo
generate_demo(sys.argv[1] + "/data", products=60, users=40, events=800, seed=1)
Shop(sys.argv[1] + "/w").train(sys.argv[1] + "/data", models=["popularity"], log=None,
    search_finetune_steps=0, search_cross_steps=0, fusion=False)
import mlflow.telemetry.client as telemetry
print(json.dumps({"looked_up": sorted(set(looked_up)),
                  "telemetry_client": telemetry.get_telemetry_client() is not None}))
"""

# what MLflow 3.17 reads as "in CI or testing" (it then sends nothing), and the switches themselves
CI_VARIABLES = ("PYTEST_CURRENT_TEST", "GITHUB_ACTIONS", "CI", "CIRCLECI", "GITLAB_CI", "JENKINS_URL",
                "TRAVIS", "TF_BUILD", "BITBUCKET_BUILD_NUMBER", "CODEBUILD_BUILD_ARN", "BUILDKITE",
                "TEAMCITY_VERSION", "CLOUD_RUN_EXECUTION", "RUNBOT_HOST_URL", "RUNBOT_BUILD_NAME",
                "RUNBOT_WORKER_ID", "MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")  # fmt: skip


def test_a_training_looks_up_no_host(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = json.loads(proc.stdout.strip().splitlines()[-1])
    # (localhost-like names only: a library asking its own machine is no call out)
    outside = [h for h in said["looked_up"] if h not in ("localhost", "127.0.0.1", "::1", "")]
    assert outside == [] and not said["telemetry_client"], said
