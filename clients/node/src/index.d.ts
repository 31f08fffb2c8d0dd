// Types of @microgpt/client (src/index.js). Hand-written; keep in step with index.js.

import * as grpc from '@grpc/grpc-js';

export { grpc };
export declare const status: typeof grpc.status;
export declare const DEFAULT_PROTO_DIR: string;
/** The microgpt.v1 package loaded from PROTO_DIR (service constructors). */
export declare function loadProto(protoDir?: string): grpc.GrpcObject;

/** A failed call. */
export declare class MicrogptError extends Error {
  constructor(code: grpc.status, details: string, metadata?: grpc.Metadata);
  readonly name: 'MicrogptError';
  /** The gRPC status code, e.g. status.INVALID_ARGUMENT (3). */
  readonly code: grpc.status;
  /** Its name, e.g. "INVALID_ARGUMENT". */
  readonly codeName: string;
  /** The server's message. */
  readonly details: string;
  readonly metadata?: grpc.Metadata;
  static from(error: unknown): MicrogptError;
}

export interface ClientOptions {
  /** Default: insecure. TLS: grpc.credentials.createSsl(caPem). */
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** Folder holding microgpt/v1/microgpt.proto (default DEFAULT_PROTO_DIR). */
  protoDir?: string;
  /** Default deadline of every call, in milliseconds from its start. */
  timeout?: number;
  /**
   * Metadata sent with every call. An "authorization" entry replaces the token from
   * $MICROGPT_AUTH_TOKEN (giving it and authToken throws a TypeError).
   */
  metadata?: Record<string, string>;
  /**
   * Bearer token sent as "authorization: Bearer <token>" on every call (trimmed).
   * Unset: $MICROGPT_AUTH_TOKEN, like the microgpt CLI; "": no token.
   */
  authToken?: string;
}

export interface CallOptions {
  /** Cancels the call; the pending promise or next() rejects with signal.reason. */
  signal?: AbortSignal;
  /** Deadline in milliseconds from now (DEADLINE_EXCEEDED after it). */
  timeout?: number;
  /** Absolute deadline. */
  deadline?: Date | number;
}

type Uint64 = number | bigint | string;

/** GenerateRequest, camelCase. Unset fields take the server's defaults. */
export interface GenerateRequest {
  /**
   * "" or unset: the only model served (a generator serving several rejects the
   * request with INVALID_ARGUMENT "model must be set").
   */
  model?: string;
  /** 0 or unset: the latest loaded version. */
  version?: number;
  prompt?: string;
  maxTokens?: number;
  /** Unset: 0.5; 0: greedy. */
  temperature?: number;
  topK?: number;
  /** In (0, 1]; unset: 1. */
  topP?: number;
  /** Unset: random. Sample i uses seed + i. */
  seed?: Uint64;
  numSamples?: number;
  topLogprobs?: number;
  /**
   * Lets the server send several tokens of a sample in one message (fewer messages
   * for the same tokens); generate still yields one Token per token. Default false.
   */
  packTokens?: boolean;
  /** Stop strings (at most 8 of 1..64 bytes): a sample ends when its text ends with one. */
  stop?: string[];
  /** Send the stop string as the end of the text (default false). */
  includeStop?: boolean;
  /** Tokens before BOS or a stop string can end a sample. */
  minTokens?: number;
  /** Ends each sample after this many ms; 0: no limit. */
  timeLimitMs?: number;
  /** After temperature, drop tokens less likely than minP times the likeliest; [0, 1]. */
  minP?: number;
  /** (0, 10]; unset: 1. Divides positive (multiplies negative) logits of repeated tokens. */
  repetitionPenalty?: number;
  /** [-2, 2], subtracted from the logit of each token already in the sample. */
  presencePenalty?: number;
  /** [-2, 2], times a token's count, subtracted from its logit. */
  frequencyPenalty?: number;
  /** Character (or "" for BOS) to a bias in [-100, 100], added to its logit. */
  logitBias?: Record<string, number>;
  /** A PCRE2 pattern each sample's whole text must match. */
  regex?: string;
  /** Report the prompt's tokens' logprobs (Token.promptLogprobs, on id -1 tokens first). */
  promptLogprobs?: boolean;
}

export interface ScoreRequest {
  model?: string;
  version?: number;
  texts: string[];
  topLogprobs?: number;
}

/** A token of a given text and the logprob the model gives it there. */
export interface ScoredToken {
  text: string;
  id: number;
  position: number;
  logprob: number;
  topLogprobs: TokenLogprob[];
}

export interface TextScore {
  tokens: ScoredToken[];
  /** The log-likelihood, the mean logprob and exp(-mean). */
  sumLogprob: number;
  meanLogprob: number;
  perplexity: number;
}

export interface ScoreResponse {
  model: string;
  version: number;
  scores: TextScore[];
}

export type FinishReason =
  | 'bos' | 'max_tokens' | 'block_size' | 'cancelled' | 'stop_sequence' | 'time_limit'
  | 'no_match';

export interface TokenLogprob {
  text: string;
  id: number;
  logprob: number;
}

/** One generated token of one sample. */
export interface Token {
  sampleIndex: number;
  /** One character, or "" for BOS. */
  text: string;
  id: number;
  position: number;
  logprob: number;
  topLogprobs: TokenLogprob[];
  /** Set on the last token of each sample, null before. */
  finishReason: FinishReason | null;
  /** Set on the last token of each sample ("" and 0 before). */
  model: string;
  version: number;
  /** Usage, on the last token of each sample only. */
  promptTokens?: number;
  generatedTokens?: number;
  /** The seed that reproduces the sample (a decimal string: uint64). */
  seed?: string;
  /** The stop string that ended the sample ("" otherwise). */
  stopSequence?: string;
  /** With promptLogprobs: the prompt's tokens, on tokens with id -1 before the generated. */
  promptLogprobs: ScoredToken[];
}

export interface Sample {
  text: string;
  tokens: Token[];
  finishReason?: FinishReason;
  model?: string;
  version?: number;
  promptTokens?: number;
  generatedTokens?: number;
  seed?: string;
  stopSequence?: string;
}

export interface ModelConfig {
  nEmbd: number;
  nHead: number;
  nLayer: number;
  blockSize: number;
  vocabSize: number;
}

export interface ModelInfo {
  name: string;
  /** Newest first. */
  versions: { version: number; step: number; loss: number }[];
  config: ModelConfig;
  vocab: string[];
}

declare class BaseClient {
  /**
   * address: host:port. Without it (undefined or ""), like the microgpt CLI:
   * $MICROGPT_GENERATOR else localhost:50051 (Generator), $MICROGPT_TRAINER else
   * localhost:50052 (Trainer). The bearer token: options.authToken, else
   * $MICROGPT_AUTH_TOKEN.
   */
  constructor(address?: string, options?: ClientOptions);
  readonly address: string;
  /** Resolves once connected; rejects with UNAVAILABLE after timeout ms (default 10000). */
  waitForReady(timeout?: number): Promise<void>;
  close(): void;
}

export declare class GeneratorClient extends BaseClient {
  /**
   * Streams tokens. Leaving the loop early cancels the call; aborting options.signal
   * cancels it and rejects with the signal's reason. Throws a TypeError at once on an
   * unknown request field.
   */
  generate(request?: GenerateRequest, options?: CallOptions): AsyncGenerator<Token, void, undefined>;
  /** Waits for the whole stream; samples in index order. */
  complete(request?: GenerateRequest, options?: CallOptions): Promise<Sample[]>;
  listModels(options?: CallOptions): Promise<ModelInfo[]>;
  score(request: ScoreRequest, options?: CallOptions): Promise<ScoreResponse>;
}

export interface StartTrainingRequest {
  model: string;
  /** Documents sent with the request, one per entry. */
  documents?: string[];
  /** A file relative to the trainer's --data_root. */
  datasetPath?: string;
  config?: Partial<Omit<ModelConfig, 'vocabSize'>>;
  steps?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: Uint64;
  checkpointEvery?: number;
  resume?: boolean;
}

export type JobState = 'unspecified' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface TrainingProgress {
  step: number;
  totalSteps: number;
  loss: number;
  learningRate: number;
  tokensPerSecond: number;
  elapsedSeconds: number;
}

export interface Checkpoint {
  model: string;
  version: number;
  step: number;
  loss: number;
  path: string;
}

export interface TrainingJob {
  jobId: string;
  model: string;
  state: JobState;
  progress: TrainingProgress;
  latestVersion: number;
  error: string;
  /** The StartTrainingRequest message as decoded (camelCase; inline documents dropped). */
  request: Record<string, unknown>;
}

export type TrainingEvent =
  | { type: 'progress'; progress: TrainingProgress }
  | { type: 'checkpointPublished'; checkpoint: Checkpoint }
  | { type: 'finished'; job: TrainingJob };

export declare class TrainerClient extends BaseClient {
  /** Resolves to the job id. */
  startTraining(request: StartTrainingRequest, options?: CallOptions): Promise<string>;
  /** Progress and publish events; the last one is "finished". */
  watchTraining(jobId: string, options?: CallOptions): AsyncGenerator<TrainingEvent, void, undefined>;
  waitForTraining(jobId: string, options?: CallOptions): Promise<TrainingJob>;
  getTraining(jobId: string, options?: CallOptions): Promise<TrainingJob>;
  listTrainings(options?: CallOptions): Promise<TrainingJob[]>;
  cancelTraining(jobId: string, options?: CallOptions): Promise<TrainingJob>;
  listCheckpoints(model?: string, options?: CallOptions): Promise<Checkpoint[]>;
}
