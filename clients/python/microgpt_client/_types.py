"""Plain Python values for the messages of microgpt.v1.

Every value keeps the message it was made from in ``raw`` (not shown in repr and not
compared), for fields this wrapper does not surface.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, List, Optional, Tuple

import grpc

from ._stubs import microgpt_pb2 as pb


class MicrogptError(Exception):
    """A failed call: the gRPC status ``code`` (a ``grpc.StatusCode``) and its ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> "MicrogptError":
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "")


class FinishReason(str, enum.Enum):
    """Why a sample ended; compares equal to its value (``token.finish_reason == "bos"``)."""

    BOS = "bos"  # the model drew BOS, the end-of-document token
    MAX_TOKENS = "max_tokens"  # max_tokens tokens were generated
    BLOCK_SIZE = "block_size"  # the sequence reached the model's block_size
    CANCELLED = "cancelled"  # the server stopped the sample (shutting down); no token
    STOP_SEQUENCE = "stop_sequence"  # the text ended with a stop string (Token.stop_sequence)
    TIME_LIMIT = "time_limit"  # the request's time_limit_ms passed; no token
    NO_MATCH = "no_match"  # regex: no character of the model can continue the text; no token

    def __str__(self) -> str:
        return self.value


_FINISH_REASONS = {
    pb.FINISH_REASON_BOS: FinishReason.BOS,
    pb.FINISH_REASON_MAX_TOKENS: FinishReason.MAX_TOKENS,
    pb.FINISH_REASON_BLOCK_SIZE: FinishReason.BLOCK_SIZE,
    pb.FINISH_REASON_CANCELLED: FinishReason.CANCELLED,
    pb.FINISH_REASON_STOP_SEQUENCE: FinishReason.STOP_SEQUENCE,
    pb.FINISH_REASON_TIME_LIMIT: FinishReason.TIME_LIMIT,
    pb.FINISH_REASON_NO_MATCH: FinishReason.NO_MATCH,
}


def _ends_without_token(reason: Optional[FinishReason], include_stop: bool) -> bool:
    return reason in (FinishReason.CANCELLED, FinishReason.TIME_LIMIT,
                      FinishReason.NO_MATCH) or (
        reason is FinishReason.STOP_SEQUENCE and not include_stop)


class JobState(str, enum.Enum):
    """The state of a training job; compares equal to its value (``job.state == "succeeded"``)."""

    UNSPECIFIED = "unspecified"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


_JOB_STATES = {
    pb.JOB_STATE_UNSPECIFIED: JobState.UNSPECIFIED,
    pb.JOB_STATE_RUNNING: JobState.RUNNING,
    pb.JOB_STATE_SUCCEEDED: JobState.SUCCEEDED,
    pb.JOB_STATE_FAILED: JobState.FAILED,
    pb.JOB_STATE_CANCELLED: JobState.CANCELLED,
}


@dataclass(frozen=True)
class TokenLogprob:
    text: str  # "" for BOS
    id: int
    logprob: float  # natural log, from the raw logits

    @classmethod
    def from_proto(cls, m: Any) -> "TokenLogprob":
        return cls(text=m.text, id=m.id, logprob=m.logprob)


@dataclass(frozen=True)
class ScoredToken:
    """A token of a given text with the logprob the model gives it there (Score,
    prompt_logprobs)."""

    text: str  # one character, or "" for BOS
    id: int
    position: int
    logprob: float
    top_logprobs: Tuple[TokenLogprob, ...]

    @classmethod
    def from_proto(cls, m: Any) -> "ScoredToken":
        return cls(text=m.text, id=m.id, position=m.position, logprob=m.logprob,
                   top_logprobs=tuple(TokenLogprob.from_proto(t) for t in m.top_logprobs))


@dataclass(frozen=True)
class TextScore:
    """The score of one text (Generator.score): its tokens' logprobs, their sum (the
    log-likelihood) and mean, and the perplexity exp(-mean)."""

    tokens: Tuple[ScoredToken, ...]
    sum_logprob: float
    mean_logprob: float
    perplexity: float

    @classmethod
    def from_proto(cls, m: Any) -> "TextScore":
        return cls(tokens=tuple(ScoredToken.from_proto(t) for t in m.tokens),
                   sum_logprob=m.sum_logprob, mean_logprob=m.mean_logprob,
                   perplexity=m.perplexity)


@dataclass(frozen=True)
class Token:
    """One generated token of one sample (messages of several samples interleave)."""

    sample_index: int
    text: str  # one character, or "" for BOS
    id: int  # BOS is vocab_size - 1; -1 on an end without a token (cancelled, time_limit,
    # stop_sequence without include_stop)
    position: int
    logprob: float
    top_logprobs: Tuple[TokenLogprob, ...]
    # Set on the last token of each sample, None before.
    finish_reason: Optional[FinishReason]
    # The model and version that served the sample; set on its last token ("" and 0 before).
    model: str
    version: int
    raw: Any = field(default=None, repr=False, compare=False)
    # Usage, on the last token of each sample: the prompt's tokens, the tokens generated
    # (BOS and a stop sequence's included), the seed that reproduces the sample, and the
    # stop string that ended it (finish_reason "stop_sequence").
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seed: int = 0
    stop_sequence: str = ""
    # With prompt_logprobs: the prompt's tokens, on tokens with id -1 before the sample's
    # generated ones.
    prompt_logprobs: Tuple[ScoredToken, ...] = ()

    @property
    def is_last(self) -> bool:
        """True on the last token of its sample."""
        return self.finish_reason is not None

    @classmethod
    def from_proto(cls, m: Any) -> "Token":
        return cls(
            sample_index=m.sample_index,
            text=m.text,
            id=m.id,
            position=m.position,
            logprob=m.logprob,
            top_logprobs=tuple(TokenLogprob.from_proto(t) for t in m.top_logprobs),
            finish_reason=_FINISH_REASONS.get(m.finish_reason),
            model=m.model,
            version=m.version,
            raw=m,
            prompt_tokens=m.prompt_tokens,
            generated_tokens=m.generated_tokens,
            seed=m.seed,
            stop_sequence=m.stop_sequence,
            prompt_logprobs=tuple(ScoredToken.from_proto(t) for t in m.prompt_logprobs),
        )

    @classmethod
    def list_from_proto(cls, m: Any, include_stop: bool = False) -> "List[Token]":
        """The tokens of one GenerateResponse. A packed message (``pack_tokens``) lists them
        in ``tokens``: its finish reason, model, version and usage go to the last one, and
        an end without a token (cancelled, time_limit, stop_sequence unless the request set
        ``include_stop``) becomes a token of its own with id -1, as an unpacked stream has
        it. Each token's ``raw`` is the message that carried it."""
        if not m.tokens:
            return [cls.from_proto(m)]
        prompt = [cls(sample_index=m.sample_index, text="", id=-1, position=0, logprob=0.0,
                      top_logprobs=(), finish_reason=None, model="", version=0, raw=m,
                      prompt_logprobs=tuple(ScoredToken.from_proto(t)
                                            for t in m.prompt_logprobs))
                  ] if m.prompt_logprobs else []
        tokens = [
            cls(sample_index=m.sample_index, text=t.text, id=t.id, position=t.position,
                logprob=t.logprob,
                top_logprobs=tuple(TokenLogprob.from_proto(a) for a in t.top_logprobs),
                finish_reason=None, model="", version=0, raw=m)
            for t in m.tokens
        ]
        tokens = prompt + tokens
        finish_reason = _FINISH_REASONS.get(m.finish_reason)
        if _ends_without_token(finish_reason, include_stop):
            tokens.append(cls(sample_index=m.sample_index, text="", id=-1, position=0,
                              logprob=0.0, top_logprobs=(), finish_reason=None, model="",
                              version=0, raw=m))
        if finish_reason is not None:
            tokens[-1] = dataclasses.replace(
                tokens[-1], finish_reason=finish_reason, model=m.model, version=m.version,
                prompt_tokens=m.prompt_tokens, generated_tokens=m.generated_tokens,
                seed=m.seed, stop_sequence=m.stop_sequence)
        return tokens


@dataclass(frozen=True)
class Sample:
    """A whole sample, as collected by ``Generator.complete``."""

    text: str  # the generated continuation of the prompt (BOS excluded)
    finish_reason: Optional[FinishReason]
    model: str
    version: int
    tokens: Tuple[Token, ...] = field(repr=False)
    # The usage of its last token (see Token).
    prompt_tokens: int = 0
    generated_tokens: int = 0
    seed: int = 0
    stop_sequence: str = ""


@dataclass(frozen=True)
class ModelConfig:
    n_embd: int
    n_head: int
    n_layer: int
    block_size: int
    vocab_size: int

    @classmethod
    def from_proto(cls, m: Any) -> "ModelConfig":
        return cls(m.n_embd, m.n_head, m.n_layer, m.block_size, m.vocab_size)


@dataclass(frozen=True)
class ModelVersion:
    version: int
    step: int
    loss: float

    @classmethod
    def from_proto(cls, m: Any) -> "ModelVersion":
        return cls(version=m.version, step=m.step, loss=m.loss)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    versions: Tuple[ModelVersion, ...]  # newest first
    config: ModelConfig  # of the newest version
    vocab: Tuple[str, ...]  # characters in id order; BOS (id = len(vocab)) not listed
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def latest_version(self) -> int:
        return self.versions[0].version if self.versions else 0

    @classmethod
    def from_proto(cls, m: Any) -> "ModelInfo":
        return cls(
            name=m.name,
            versions=tuple(ModelVersion.from_proto(v) for v in m.versions),
            config=ModelConfig.from_proto(m.config),
            vocab=tuple(m.vocab),
            raw=m,
        )


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    total_steps: int
    loss: float  # mean loss of the last step's batch (nats per token)
    learning_rate: float
    tokens_per_second: float
    elapsed_seconds: float

    @classmethod
    def from_proto(cls, m: Any) -> "TrainingProgress":
        return cls(
            step=m.step,
            total_steps=m.total_steps,
            loss=m.loss,
            learning_rate=m.learning_rate,
            tokens_per_second=m.tokens_per_second,
            elapsed_seconds=m.elapsed_seconds,
        )


@dataclass(frozen=True)
class Checkpoint:
    model: str
    version: int
    step: int
    loss: float
    path: str  # on the trainer's file system

    @classmethod
    def from_proto(cls, m: Any) -> "Checkpoint":
        return cls(model=m.model, version=m.version, step=m.step, loss=m.loss, path=m.path)


@dataclass(frozen=True)
class TrainingJob:
    job_id: str
    model: str
    state: JobState
    progress: TrainingProgress
    latest_version: int  # the newest version this job published, 0 before its first
    error: str  # why the job failed, when it did
    raw: Any = field(default=None, repr=False, compare=False)

    @property
    def request(self) -> Any:
        """The StartTrainingRequest message that started the job."""
        return self.raw.request if self.raw is not None else None

    @classmethod
    def from_proto(cls, m: Any) -> "TrainingJob":
        return cls(
            job_id=m.job_id,
            model=m.model,
            state=_JOB_STATES.get(m.state, JobState.UNSPECIFIED),
            progress=TrainingProgress.from_proto(m.progress),
            latest_version=m.latest_version,
            error=m.error,
            raw=m,
        )


@dataclass(frozen=True)
class TrainingEvent:
    """One event of ``Trainer.watch``: exactly one of progress, checkpoint and job is set.

    ``kind`` is "progress", "checkpoint_published" or "finished" (the last event; ``job``
    holds the job's final state).
    """

    kind: str
    progress: Optional[TrainingProgress] = None
    checkpoint: Optional[Checkpoint] = None
    job: Optional[TrainingJob] = None
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_proto(cls, m: Any) -> "TrainingEvent":
        kind = m.WhichOneof("event") or ""
        if kind == "progress":
            return cls(kind, progress=TrainingProgress.from_proto(m.progress), raw=m)
        if kind == "checkpoint_published":
            return cls(kind, checkpoint=Checkpoint.from_proto(m.checkpoint_published), raw=m)
        if kind == "finished":
            return cls(kind, job=TrainingJob.from_proto(m.finished), raw=m)
        return cls(kind, raw=m)

