"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00002.parquet": "d1d198697fdcd2781632fdfc99b00638e5ff3f42161e2d7fbcf11a5a3352adbb",
    "data/train-00001-of-00002.parquet": "9f8fc7f90ee9954e5d71d58af924cd8d0bc40259f05dc90df31201f75153f337",
    "data/validation-00000-of-00001.parquet": "b456bc5f1a5ae94137ad210ed3e96f1d29d8b6394d6b9de4d79f17d67155726f",
    "filtered/part-00000-of-00001.parquet": "389999bb3d48b90014b234100c83704feb8c8a6aa11151ea5eecda69b99e0138",
    "duplicates/part-00000-of-00001.parquet": "b486f6068d03268c040160e77aa8d8d59bca4a15b4f72a12ba384f7cbd9fdfff",
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
