"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00003.parquet": "24649db466e2a463065bd6231fdbf93e7dce10e417ed9f66afea20bb1c51c33d",
    "data/train-00001-of-00003.parquet": "9e618548278de98c1fa7a130c9c9d05ac8f204fcea0008607e1115ac616a90ea",
    "data/train-00002-of-00003.parquet": "41260503767cb1b2d36ec00b76efa3a1418eefd74551f2b82ba0163550b4dab8",
    "data/validation-00000-of-00001.parquet": "02be1465c1b92ae0f89880771ea7a4b66644c54389e889a3e84398fc13c1623c",
    "duplicates/part-00000-of-00001.parquet": "d5169f2942e8d695c0153d55e2e3caf441de32db5a7c106582651b3799c96b82",
    "filtered/part-00000-of-00001.parquet": "2bfd3358991bbb3db414f82dda0ca15721fcbb1fff9dec06fb6f1ad61c3c9e85",
}


def _digests(out: str) -> dict[str, str]:
    found = {}
    for folder in ("data", "rejects", "filtered", "duplicates"):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), "rb") as fh:
                found[f"{folder}/{name}"] = hashlib.sha256(fh.read()).hexdigest()
    return found


def test_demo_output_files_are_byte_identical_to_the_recorded_ones(tmp_path):
    out = str(tmp_path / "demo")
    # A fixed run id: the digests then depend on the code, the config and the sample data only.
    assert main(["run", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--run-id", "golden"]) == 0
    assert _digests(out) == DEMO_FILES
