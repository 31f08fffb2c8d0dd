"""Python client of the microgpt services (package microgpt.v1).

    from microgpt_client import Generator

    # The bearer token: auth_token=..., else $MICROGPT_AUTH_TOKEN, like the microgpt CLI.
    with Generator("127.0.0.1:50051") as generator:
        for token in generator.generate(prompt="a", model="names", seed=7, num_samples=2):
            print(token.sample_index, repr(token.text), token.finish_reason or "")

The protobuf and gRPC stubs are generated from proto/microgpt/v1/microgpt.proto when the
package is built (build_stubs.sh); they are importable as ``microgpt_client.pb2`` and
``microgpt_client.pb2_grpc`` for what the wrapper does not cover.
"""

try:
    from ._stubs import microgpt_pb2 as pb2
    from ._stubs import microgpt_pb2_grpc as pb2_grpc
except ImportError as error:  # pragma: no cover
    if getattr(error, "name", "") and error.name.startswith("microgpt_client._stubs"):
        raise ImportError(
            "microgpt_client: the gRPC stubs are not generated; run clients/python/build_stubs.sh "
            "(or install the package, which generates them)") from error
    raise

from ._client import Generator, Stream, Trainer
from ._types import (Checkpoint, FinishReason, JobState, MicrogptError, ModelConfig, ModelInfo,
                     ModelVersion, Sample, ScoredToken, TextScore, Token, TokenLogprob,
                     TrainingEvent, TrainingJob, TrainingProgress)

__version__ = "0.1.0"

__all__ = [
    "Checkpoint", "FinishReason", "Generator", "JobState", "MicrogptError", "ModelConfig",
    "ModelInfo", "ModelVersion", "Sample", "ScoredToken", "Stream", "TextScore", "Token",
    "TokenLogprob", "Trainer",
    "TrainingEvent", "TrainingJob", "TrainingProgress", "pb2", "pb2_grpc",
]
