"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00002.parquet": "2103abc72eafedbf00bb3da76a6fd9c1cb4ddd28e9fcd3ccc5043c28e4a40606",
    "data/train-00001-of-00002.parquet": "2274a0e4ea49be185d45215bc0502ff574f5609932585e39ceaa7306d587b29b",
    "data/validation-00000-of-00001.parquet": "d04fabe67ee1f5a59ac8e2fd6c5298534b1d2d755c2e6110c99edd20bc3e37c2",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
    "filtered/part-00000-of-00001.parquet": "c829595e7e92118146086974828d2235ca7f2bd125d0a9572be5ab8812da4de5",
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
