import os
import sys

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline

# Tests import the project's top-level packages from a checkout without installing it.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipelines.cli import DEFAULT_RUNNER  # noqa: E402

SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


def local_pipeline() -> TestPipeline:
    """A TestPipeline on the in-process runner: DirectRunner would try to download Prism."""
    return TestPipeline(options=PipelineOptions([f"--runner={DEFAULT_RUNNER}"]))


@pytest.fixture
def shared_data() -> str:
    if not os.path.isdir(SHARED_DATA):
        pytest.skip("../shared/data is not present (fresh clone); the core suite does not need it")
    return SHARED_DATA
