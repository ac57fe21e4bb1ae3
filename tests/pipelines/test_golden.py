"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00003.parquet": "9c97fcf9345b58960fbda5ac8cf4e2fc595a396a2f92bdb3e92c5e49f9ab8c6a",
    "data/train-00001-of-00003.parquet": "95dc9a14c51e926d300c0f223e6cef28f58d25bfd599e15f8b0b8303ce84a8da",
    "data/train-00002-of-00003.parquet": "ccdeaa762ae0a8e7d3f35b93efad2f9ace61f5362be26f13fe23badd7aa184cd",
    "data/validation-00000-of-00001.parquet": "f2fed3c5ac24a45481de7083dc33c0150362b2a7e4bb6e56416055bcaca793b3",
    "filtered/part-00000-of-00001.parquet": "2bfd3358991bbb3db414f82dda0ca15721fcbb1fff9dec06fb6f1ad61c3c9e85",
    "duplicates/part-00000-of-00001.parquet": "d5169f2942e8d695c0153d55e2e3caf441de32db5a7c106582651b3799c96b82",
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
