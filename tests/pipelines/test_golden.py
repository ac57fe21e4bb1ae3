"""The demo's output files, byte for byte: a refactor that changes them changes behaviour.

When a change is meant to alter the demo's output (a new default, a new column), update the
digests below in the same commit and say why in its message.
"""

import hashlib
import os

import pytest

from hybridmix.pipelines.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

DEMO_FILES = {
    "data/train-00000-of-00002.parquet": "5b2be44d7290ffd1fd0e1ce67423c87fa11bd39ed74423ed2d90eb67b91ef7eb",
    "data/train-00001-of-00002.parquet": "649cdd25b6acedd78009b70963ba62a3fdb40961c5089537c4d8f605668f8d70",
    "data/validation-00000-of-00001.parquet": "59cff7f33d8117d2758b9d045fb0f7151e2f29f6f8e342f7b9d7b7d954446f69",
    "duplicates/part-00000-of-00001.parquet": "9ca331f906efbcdaf58dc1b89e15bfc84e8230930560a97a26b53ba00fe3cdb8",
    "filtered/part-00000-of-00001.parquet": "4c6caf84765ac159a96c8c2b7700a5f2f49c5ac6a3516fa153c1ad81ab9b84ed",
    "index/part-00000-of-00003.parquet": "a312fa5f81a982e97aa9abf2c62165d186bc1e6bc60d558af7ff93f261aa9728",
    "index/part-00001-of-00003.parquet": "dc3bec615bb1f5aa1b2eaa03fe25c713c4bd1254275b2cd790c4706ade81b0ab",
    "index/part-00002-of-00003.parquet": "3f705c72d6cbd0f6b3c2fa9d1919a7dd0b42441f5909d969ff42a4a4943c1e75",
    "ledger/part-00000-of-00001.parquet": "c0469dd7d3271f718c8a326a8e1b7da7b697529c581c8acf1abba2db2ee560eb",
    "rejects/part-00000-of-00001.parquet": "9e95668d03fd0ba6bc4ec38763b54e6a4cf31b6a56219819ffdb465382dbee6f",
}


def _digests(out: str) -> dict[str, str]:
    found = {}
    for folder in ("data", "rejects", "filtered", "duplicates", "ledger", "index"):
        path = os.path.join(out, folder)
        for name in sorted(os.listdir(path)) if os.path.isdir(path) else []:
            with open(os.path.join(path, name), "rb") as fh:
                found[f"{folder}/{name}"] = hashlib.sha256(fh.read()).hexdigest()
    return found


# The compiled kernels run on threads over runs of texts; the output must not depend on how many.
@pytest.mark.parametrize("threads", [[], ["--kernel-threads", "1"], ["--kernel-threads", "3"]],
                         ids=["default", "one-thread", "three-threads"])
def test_demo_output_files_are_byte_identical_to_the_recorded_ones(tmp_path, threads):
    out = str(tmp_path / "demo")
    # A fixed run id: the digests then depend on the code, the config and the sample data only.
    assert main(["run", os.path.join(ROOT, "examples", "demo.yaml"), "--output", out, "--run-id", "golden",
                 *threads]) == 0
    assert _digests(out) == DEMO_FILES
