"""Generator and Trainer: thin wrappers over the generated microgpt.v1 stubs."""

from __future__ import annotations

import collections
import os
import threading
from typing import (Any, Callable, Dict, Generic, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple, TypeVar)

import grpc

from ._stubs import microgpt_pb2 as pb
from ._stubs import microgpt_pb2_grpc as pb_grpc
from ._types import (Checkpoint, MicrogptError, ModelInfo, Sample, TextScore, Token, TrainingEvent,
                     TrainingJob)

T = TypeVar("T")
Metadata = Optional[Sequence[Tuple[str, str]]]


class Stream(Generic[T]):
    """An iterator over the values of a server-streaming call (``convert`` turns each message
    into a list of them).

    Iterating raises MicrogptError when the call fails. ``cancel()`` (alias ``close()``, also
    called on leaving a ``with`` block and when the stream is garbage collected, e.g. after
    ``break`` in a ``for`` loop over it) cancels the call: the server stops, and iteration
    ends quietly, also when another thread is blocked in it.
    """

    def __init__(self, call: Any, convert: Callable[[Any], List[T]]):
        self._call = call
        self._convert = convert
        self._pending: collections.deque = collections.deque()  # converted, not yet returned
        self._lock = threading.Lock()
        self._done = False
        self._cancelled = False

    def __iter__(self) -> "Stream[T]":
        return self

    def __next__(self) -> T:
        while not self._pending:
            if self._done:
                raise StopIteration
            try:
                message = next(self._call)
            except StopIteration:
                self._done = True
                raise
            except grpc.RpcError as error:
                self._done = True
                if self._cancelled:
                    raise StopIteration from None
                raise MicrogptError.from_rpc_error(error) from None
            self._pending.extend(self._convert(message))
        return self._pending.popleft()

    def cancel(self) -> None:
        """Cancels the call if it is still running; later iteration ends the stream."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = True
        self._call.cancel()
        self._done = True
        self._pending.clear()

    close = cancel

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def __enter__(self) -> "Stream[T]":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()

    def __del__(self) -> None:
        if getattr(self, "_call", None) is not None and not getattr(self, "_done", True):
            try:
                self.cancel()
            except Exception:  # interpreter shutdown
                pass


# Like the microgpt CLI: the bearer token of every call, when none is given.
AUTH_TOKEN_ENV = "MICROGPT_AUTH_TOKEN"


def _call_metadata(metadata: Metadata, auth_token: Optional[str]) -> Metadata:
    """METADATA plus "authorization: Bearer <token>": the token is AUTH_TOKEN, or when that
    is None $MICROGPT_AUTH_TOKEN; "" sends none. An authorization entry in METADATA is an explicit
    choice too, so the environment does not add a second one."""
    metadata = tuple(metadata) if metadata else ()
    has_authorization = any(key.lower() == "authorization" for key, _ in metadata)
    if auth_token is not None and has_authorization:
        raise ValueError("give auth_token or an authorization entry in metadata, not both")
    if auth_token is None and not has_authorization:
        auth_token = os.environ.get(AUTH_TOKEN_ENV, "")
    # Stripped like the CLI does: a token file or variable often ends with a newline.
    auth_token = (auth_token or "").strip()
    if auth_token:
        metadata += (("authorization", f"Bearer {auth_token}"),)
    return metadata or None


class _Client:
    # Like the microgpt CLI: without an address, $<_ADDRESS_ENV>, else _DEFAULT_ADDRESS.
    _ADDRESS_ENV = ""
    _DEFAULT_ADDRESS = ""

    def __init__(self, address: Optional[str] = None, *, channel: Optional[grpc.Channel] = None,
                 credentials: Optional[grpc.ChannelCredentials] = None,
                 options: Optional[Sequence[Tuple[str, Any]]] = None,
                 metadata: Metadata = None, auth_token: Optional[str] = None,
                 timeout: Optional[float] = None):
        if channel is None:
            address = address or os.environ.get(self._ADDRESS_ENV) or self._DEFAULT_ADDRESS
            if credentials is not None:
                channel = grpc.secure_channel(address, credentials, options=options)
            else:
                channel = grpc.insecure_channel(address, options=options)
            self._owns_channel = True
        else:
            self._owns_channel = False
        self._channel = channel
        self.address = address
        self._metadata = _call_metadata(metadata, auth_token)
        self._timeout = timeout

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def wait_ready(self, timeout: Optional[float] = None) -> None:
        """Blocks until the channel is connected; MicrogptError(UNAVAILABLE) after timeout."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise MicrogptError(grpc.StatusCode.UNAVAILABLE,
                                f"not connected after {timeout} s") from None

    def close(self) -> None:
        """Closes the channel if this client made it."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _unary(self, method: Any, request: Any, timeout: Optional[float]) -> Any:
        try:
            return method(request, timeout=self._timeout if timeout is None else timeout,
                          metadata=self._metadata)
        except grpc.RpcError as error:
            raise MicrogptError.from_rpc_error(error) from None

    def _stream(self, method: Any, request: Any, timeout: Optional[float],
                convert: Callable[[Any], List[T]]) -> Stream[T]:
        return Stream(method(request, timeout=timeout, metadata=self._metadata), convert)


class Generator(_Client):
    """Client of microgpt.v1.Generator.

    ``Generator("127.0.0.1:50051")`` opens an insecure channel (``credentials=`` for TLS,
    e.g. ``grpc.ssl_channel_credentials(ca_pem)``; ``channel=`` to share one); without an
    address, $MICROGPT_GENERATOR, else localhost:50051, as the microgpt CLI. Every call
    carries "authorization: Bearer <token>" with ``auth_token``, else (None)
    $MICROGPT_AUTH_TOKEN, as the CLI; ``auth_token=""`` sends none, and neither is added when
    ``metadata`` (pairs sent with every call) has an authorization entry. ``timeout`` is the
    default deadline of unary calls in seconds; use the client as a context manager, or
    ``close()`` it, to close the channel.
    """

    _ADDRESS_ENV = "MICROGPT_GENERATOR"
    _DEFAULT_ADDRESS = "localhost:50051"

    def __init__(self, address: Optional[str] = None, **kwargs: Any):
        super().__init__(address, **kwargs)
        self._stub = pb_grpc.GeneratorStub(self._channel)

    def generate(self, prompt: str = "", *, model: str = "", version: int = 0,
                 max_tokens: int = 0, temperature: Optional[float] = None, top_k: int = 0,
                 top_p: Optional[float] = None, seed: Optional[int] = None,
                 num_samples: int = 0, top_logprobs: int = 0, pack_tokens: bool = False,
                 stop: Sequence[str] = (), include_stop: bool = False, min_tokens: int = 0,
                 time_limit_ms: int = 0, min_p: float = 0.0,
                 repetition_penalty: Optional[float] = None, presence_penalty: float = 0.0,
                 frequency_penalty: float = 0.0,
                 logit_bias: Optional[Mapping[str, float]] = None, regex: str = "",
                 prompt_logprobs: bool = False, timeout: Optional[float] = None) -> Stream[Token]:
        """Streams the tokens sampled after ``prompt``, one Token per generated token.

        The fields are those of GenerateRequest: ``model`` "" is the only model served (a
        generator serving several fails with INVALID_ARGUMENT "model must be set"),
        ``version`` 0 the latest; ``temperature`` None is 0.5 and 0 greedy; ``top_p`` None is
        1; ``seed`` None is random (the same seed, model version and request give the same
        tokens); with ``num_samples`` > 1 the tokens of the samples interleave (see
        ``Token.sample_index``). ``timeout`` bounds the whole call in seconds. Each sample's
        last token has ``finish_reason``, ``model`` and ``version`` set. ``pack_tokens``
        lets the server send several tokens of a sample in one message (fewer messages for
        the same tokens); the stream still yields one Token per token. ``stop`` strings end a
        sample (finish_reason "stop_sequence"; with ``include_stop`` their text is sent),
        ``min_tokens`` keeps BOS and stop strings from ending one sooner, ``time_limit_ms``
        ends each after that long; ``min_p``, ``repetition_penalty``, ``presence_penalty``,
        ``frequency_penalty`` and ``logit_bias`` (character, or "" for BOS, to a bias) shape
        the distribution as GenerateRequest defines; ``regex`` (a PCRE2 pattern) must match
        each sample's whole text (finish_reason "no_match" when the model's characters cannot
        continue it); ``prompt_logprobs`` puts the prompt's ScoredTokens on id -1 tokens
        before each sample's generated ones. Each sample's last token carries its
        usage (prompt_tokens, generated_tokens, seed, stop_sequence). Errors (for example
        INVALID_ARGUMENT) raise MicrogptError from the iteration.
        """
        request = pb.GenerateRequest(
            model=model, version=version, prompt=prompt, max_tokens=max_tokens,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            num_samples=num_samples, top_logprobs=top_logprobs, pack_tokens=pack_tokens,
            stop=list(stop), include_stop=include_stop, min_tokens=min_tokens,
            time_limit_ms=time_limit_ms, min_p=min_p, repetition_penalty=repetition_penalty,
            presence_penalty=presence_penalty, frequency_penalty=frequency_penalty,
            logit_bias=dict(logit_bias or {}), regex=regex, prompt_logprobs=prompt_logprobs)
        return self._stream(self._stub.Generate, request, timeout,
                            lambda m: Token.list_from_proto(m, include_stop=include_stop))

    def complete(self, prompt: str = "", **kwargs: Any) -> List[Sample]:
        """Like generate, but waits for the end and returns the samples in index order."""
        tokens: Dict[int, List[Token]] = {}
        with self.generate(prompt, **kwargs) as stream:
            for token in stream:
                tokens.setdefault(token.sample_index, []).append(token)
        samples = []
        for index in sorted(tokens):
            sample = tokens[index]
            last = sample[-1]
            samples.append(Sample(text="".join(t.text for t in sample),
                                  finish_reason=last.finish_reason, model=last.model,
                                  version=last.version, tokens=tuple(sample),
                                  prompt_tokens=last.prompt_tokens,
                                  generated_tokens=last.generated_tokens, seed=last.seed,
                                  stop_sequence=last.stop_sequence))
        return samples

    def score(self, texts: Sequence[str], *, model: str = "", version: int = 0,
              top_logprobs: int = 0, timeout: Optional[float] = None) -> List[TextScore]:
        """The logprob the model gives every token of each text (ScoreRequest): one
        TextScore per text, in order, with the sum (log-likelihood), mean and perplexity."""
        request = pb.ScoreRequest(model=model, version=version, texts=list(texts),
                                  top_logprobs=top_logprobs)
        response = self._unary(self._stub.Score, request, timeout)
        return [TextScore.from_proto(s) for s in response.scores]

    def list_models(self, timeout: Optional[float] = None) -> List[ModelInfo]:
        """The models and versions the server has loaded."""
        response = self._unary(self._stub.ListModels, pb.ListModelsRequest(), timeout)
        return [ModelInfo.from_proto(m) for m in response.models]


class Trainer(_Client):
    """Client of microgpt.v1.Trainer; constructed like Generator.

    Without an address: $MICROGPT_TRAINER, else localhost:50052. The token: ``auth_token``,
    else $MICROGPT_AUTH_TOKEN (a trainer serves without one only with --insecure_no_auth).
    """

    _ADDRESS_ENV = "MICROGPT_TRAINER"
    _DEFAULT_ADDRESS = "localhost:50052"

    def __init__(self, address: Optional[str] = None, **kwargs: Any):
        super().__init__(address, **kwargs)
        self._stub = pb_grpc.TrainerStub(self._channel)

    def start_training(self, model: str, *, documents: Optional[Iterable[str]] = None,
                       dataset_path: Optional[str] = None, steps: int = 0,
                       batch_size: int = 0, learning_rate: Optional[float] = None,
                       seed: Optional[int] = None, checkpoint_every: int = 0,
                       resume: bool = False, n_embd: int = 0, n_head: int = 0,
                       n_layer: int = 0, block_size: int = 0,
                       timeout: Optional[float] = None) -> str:
        """Starts a training job and returns its id.

        The dataset is either ``documents`` (strings sent with the request, one document
        each) or ``dataset_path`` (a file relative to the trainer's --data_root). The other
        fields are those of StartTrainingRequest; 0 and None take the server's defaults.
        FAILED_PRECONDITION while another job runs.
        """
        if documents is not None and dataset_path is not None:
            raise ValueError("pass documents or dataset_path, not both")
        if isinstance(documents, str):
            raise TypeError("documents is a list of strings, one per document")
        request = pb.StartTrainingRequest(
            model=model, steps=steps, batch_size=batch_size, learning_rate=learning_rate,
            seed=seed, checkpoint_every=checkpoint_every, resume=resume,
            config=pb.ModelConfig(n_embd=n_embd, n_head=n_head, n_layer=n_layer,
                                  block_size=block_size))
        if documents is not None:
            request.inline_dataset.documents.extend(documents)
        elif dataset_path is not None:
            request.dataset_path = dataset_path
        return self._unary(self._stub.StartTraining, request, timeout).job_id

    def watch(self, job_id: str, timeout: Optional[float] = None) -> Stream[TrainingEvent]:
        """Streams the job's progress and publish events; the last one is "finished"."""
        return self._stream(self._stub.WatchTraining, pb.WatchTrainingRequest(job_id=job_id),
                            timeout, lambda m: [TrainingEvent.from_proto(m)])

    def wait(self, job_id: str, timeout: Optional[float] = None) -> TrainingJob:
        """Watches the job until it ends and returns its final state."""
        with self.watch(job_id, timeout=timeout) as events:
            for event in events:
                if event.job is not None:
                    return event.job
        return self.get(job_id)

    def get(self, job_id: str, timeout: Optional[float] = None) -> TrainingJob:
        job = self._unary(self._stub.GetTraining, pb.GetTrainingRequest(job_id=job_id), timeout)
        return TrainingJob.from_proto(job)

    def list_trainings(self, timeout: Optional[float] = None) -> List[TrainingJob]:
        """Jobs since the server started, newest first."""
        response = self._unary(self._stub.ListTrainings, pb.ListTrainingsRequest(), timeout)
        return [TrainingJob.from_proto(j) for j in response.jobs]

    def cancel(self, job_id: str, timeout: Optional[float] = None) -> TrainingJob:
        """Stops a running job after its current step; nothing partial is published."""
        job = self._unary(self._stub.CancelTraining,
                          pb.CancelTrainingRequest(job_id=job_id), timeout)
        return TrainingJob.from_proto(job)

    def list_checkpoints(self, model: str = "",
                         timeout: Optional[float] = None) -> List[Checkpoint]:
        """Published versions in the checkpoint root (of ``model``, or of every model)."""
        response = self._unary(self._stub.ListCheckpoints,
                               pb.ListCheckpointsRequest(model=model), timeout)
        return [Checkpoint.from_proto(c) for c in response.checkpoints]
