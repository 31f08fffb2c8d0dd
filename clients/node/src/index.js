// Node.js client of the microgpt services (package microgpt.v1).
//
// The contract, proto/microgpt/v1/microgpt.proto, is loaded at run time with
// @grpc/proto-loader; calls go through @grpc/grpc-js. Streaming calls are async
// iterators, every call takes an AbortSignal, and failed calls reject with a
// MicrogptError that carries the gRPC status code.

import { fileURLToPath } from 'node:url';

import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export { grpc };
/** gRPC status codes by name (`status.INVALID_ARGUMENT` is 3). */
export const status = grpc.status;

const PROTO_FILE = 'microgpt/v1/microgpt.proto';

/**
 * The folder holding microgpt/v1/microgpt.proto: $MICROGPT_PROTO_DIR, else the
 * repository's proto/ folder next to this package (clients/node/../../proto).
 */
export const DEFAULT_PROTO_DIR =
  process.env.MICROGPT_PROTO_DIR || fileURLToPath(new URL('../../../proto', import.meta.url));

const packages = new Map();

/**
 * Loads the microgpt.v1 package (service constructors) from PROTO_DIR, once per folder.
 * @param {string} [protoDir]
 */
export function loadProto(protoDir = DEFAULT_PROTO_DIR) {
  let pkg = packages.get(protoDir);
  if (!pkg) {
    const definition = protoLoader.loadSync(PROTO_FILE, {
      includeDirs: [protoDir],
      keepCase: false, // fields in camelCase: topP, maxTokens, sampleIndex
      longs: Number, // int64 versions and steps as numbers
      enums: String,
      defaults: true,
      oneofs: true,
    });
    pkg = grpc.loadPackageDefinition(definition).microgpt.v1;
    packages.set(protoDir, pkg);
  }
  return pkg;
}

// ------------------------------------------------------------------ errors ---

const CODE_NAMES = Object.fromEntries(
  Object.entries(grpc.status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k]));

/** A failed call: `code` is the numeric gRPC status, `codeName` its name, `details` the server's message. */
export class MicrogptError extends Error {
  /**
   * @param {number} code
   * @param {string} details
   * @param {grpc.Metadata} [metadata]
   */
  constructor(code, details, metadata) {
    const codeName = CODE_NAMES[code] ?? `CODE_${code}`;
    super(details ? `${codeName}: ${details}` : codeName);
    this.name = 'MicrogptError';
    this.code = code;
    this.codeName = codeName;
    this.details = details ?? '';
    this.metadata = metadata;
  }

  static from(error) {
    if (error instanceof MicrogptError) return error;
    if (error && typeof error.code === 'number') {
      return new MicrogptError(error.code, error.details ?? error.message, error.metadata);
    }
    return new MicrogptError(grpc.status.UNKNOWN, String(error?.message ?? error));
  }
}

// -------------------------------------------------------------- conversion ---

const FINISH_REASONS = {
  FINISH_REASON_BOS: 'bos',
  FINISH_REASON_MAX_TOKENS: 'max_tokens',
  FINISH_REASON_BLOCK_SIZE: 'block_size',
  FINISH_REASON_CANCELLED: 'cancelled',
  FINISH_REASON_STOP_SEQUENCE: 'stop_sequence',
  FINISH_REASON_TIME_LIMIT: 'time_limit',
  FINISH_REASON_NO_MATCH: 'no_match',
};

// A sample's end that carries no token of its own.
const endsWithoutToken = (reason, includeStop) =>
  reason === 'cancelled' || reason === 'time_limit' || reason === 'no_match' ||
  (reason === 'stop_sequence' && !includeStop);

// The usage a sample's last message carries.
const usageOf = (m) => ({
  promptTokens: m.promptTokens,
  generatedTokens: m.generatedTokens,
  seed: String(m.seed),
  stopSequence: m.stopSequence,
});

const JOB_STATES = {
  JOB_STATE_UNSPECIFIED: 'unspecified',
  JOB_STATE_RUNNING: 'running',
  JOB_STATE_SUCCEEDED: 'succeeded',
  JOB_STATE_FAILED: 'failed',
  JOB_STATE_CANCELLED: 'cancelled',
};

const toLogprob = (m) => ({ text: m.text, id: m.id, logprob: m.logprob });
const toScored = (t) => ({
  text: t.text, id: t.id, position: t.position, logprob: t.logprob,
  topLogprobs: t.topLogprobs.map(toLogprob),
});

function toToken(m) {
  return {
    sampleIndex: m.sampleIndex,
    text: m.text,
    id: m.id,
    position: m.position,
    logprob: m.logprob,
    topLogprobs: m.topLogprobs.map(toLogprob),
    finishReason: FINISH_REASONS[m.finishReason] ?? null,
    model: m.model,
    version: m.version,
    ...(FINISH_REASONS[m.finishReason] ? usageOf(m) : {}),
    promptLogprobs: m.promptLogprobs.map(toScored),
  };
}

// The tokens of one GenerateResponse, one object each. A packed message
// (packTokens) lists them in `tokens`; its finish reason, model, version and usage
// go to the last one, and an end without a token (cancelled, time_limit,
// stop_sequence without includeStop) becomes a token of its own with id -1, as an
// unpacked stream has it.
function toTokens(m, includeStop = false) {
  if (m.tokens.length === 0) return [toToken(m)];
  // prompt_logprobs first, on a token of their own (id -1), as unpacked.
  const prompt = m.promptLogprobs.length === 0 ? [] : [{
    sampleIndex: m.sampleIndex, text: '', id: -1, position: 0, logprob: 0, topLogprobs: [],
    finishReason: null, model: '', version: 0, promptLogprobs: m.promptLogprobs.map(toScored),
  }];
  const tokens = m.tokens.map((t) => ({
    sampleIndex: m.sampleIndex,
    text: t.text,
    id: t.id,
    position: t.position,
    logprob: t.logprob,
    topLogprobs: t.topLogprobs.map(toLogprob),
    finishReason: null,
    model: '',
    version: 0,
    promptLogprobs: [],
  }));
  tokens.unshift(...prompt);
  const finishReason = FINISH_REASONS[m.finishReason] ?? null;
  if (endsWithoutToken(finishReason, includeStop)) {
    tokens.push({ ...toToken(m), text: '', id: -1, position: 0, logprob: 0, topLogprobs: [] });
  }
  if (finishReason) {
    Object.assign(tokens.at(-1), {
      finishReason, model: m.model, version: m.version, ...usageOf(m),
    });
  }
  return tokens;
}

const toConfig = (m) => ({
  nEmbd: m?.nEmbd ?? 0,
  nHead: m?.nHead ?? 0,
  nLayer: m?.nLayer ?? 0,
  blockSize: m?.blockSize ?? 0,
  vocabSize: m?.vocabSize ?? 0,
});

const toModel = (m) => ({
  name: m.name,
  versions: m.versions.map((v) => ({ version: v.version, step: v.step, loss: v.loss })),
  config: toConfig(m.config),
  vocab: m.vocab,
});

const toProgress = (m) => ({
  step: m?.step ?? 0,
  totalSteps: m?.totalSteps ?? 0,
  loss: m?.loss ?? 0,
  learningRate: m?.learningRate ?? 0,
  tokensPerSecond: m?.tokensPerSecond ?? 0,
  elapsedSeconds: m?.elapsedSeconds ?? 0,
});

const toCheckpoint = (m) => ({
  model: m.model, version: m.version, step: m.step, loss: m.loss, path: m.path,
});

const toJob = (m) => ({
  jobId: m.jobId,
  model: m.model,
  state: JOB_STATES[m.state] ?? 'unspecified',
  progress: toProgress(m.progress),
  latestVersion: m.latestVersion,
  error: m.error,
  request: m.request, // the StartTrainingRequest (inline documents dropped by the trainer)
});

function toEvent(m) {
  switch (m.event) {
    case 'progress': return { type: 'progress', progress: toProgress(m.progress) };
    case 'checkpointPublished':
      return { type: 'checkpointPublished', checkpoint: toCheckpoint(m.checkpointPublished) };
    case 'finished': return { type: 'finished', job: toJob(m.finished) };
    default: return { type: m.event ?? 'unknown' };
  }
}

const GENERATE_FIELDS = new Set([
  'model', 'version', 'prompt', 'maxTokens', 'temperature', 'topK', 'topP', 'seed',
  'numSamples', 'topLogprobs', 'packTokens', 'stop', 'includeStop', 'minTokens',
  'timeLimitMs', 'minP', 'repetitionPenalty', 'presencePenalty', 'frequencyPenalty',
  'logitBias', 'regex', 'promptLogprobs',
]);
const SCORE_FIELDS = new Set(['model', 'version', 'texts', 'topLogprobs']);
const TRAINING_FIELDS = new Set([
  'model', 'documents', 'datasetPath', 'config', 'steps', 'batchSize', 'learningRate', 'seed',
  'checkpointEvery', 'resume',
]);

// Copies REQUEST's fields, refusing unknown ones (protobufjs would drop a misspelt
// `top_p` silently) and leaving out undefined and null (unset optional fields).
function pick(request, fields, what) {
  const out = {};
  for (const [key, value] of Object.entries(request ?? {})) {
    if (!fields.has(key)) {
      throw new TypeError(`${what}: unknown field "${key}" (fields: ${[...fields].join(', ')})`);
    }
    if (value === undefined || value === null) continue;
    out[key] = typeof value === 'bigint' ? value.toString() : value;
  }
  return out;
}

// ------------------------------------------------------------------ calls ---

function callOptions(client, options) {
  const timeout = options?.timeout ?? client.timeout;
  const deadline = options?.deadline ?? (timeout != null ? Date.now() + timeout : undefined);
  return deadline != null ? { deadline } : {};
}

function abortReason(signal) {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function unary(client, stub, method, request, options = {}) {
  const { signal } = options;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => call.cancel();
    const call = stub[method](request, client.metadata, callOptions(client, options),
      (error, response) => {
        signal?.removeEventListener('abort', onAbort);
        if (!error) resolve(response);
        else reject(signal?.aborted ? abortReason(signal) : MicrogptError.from(error));
      });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

// The messages of a server-streaming call, each converted to a list of values
// that are yielded one by one. The call starts with the first next(); leaving the
// loop early (break, return, throw) cancels it, and so does aborting SIGNAL, which
// rejects the pending next() with the signal's reason.
async function* stream(client, stub, method, request, convert, options = {}) {
  const { signal } = options;
  if (signal?.aborted) throw abortReason(signal);
  const call = stub[method](request, client.metadata, callOptions(client, options));
  call.on('error', () => {}); // errors surface through the iteration
  const onAbort = () => call.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const message of call) yield* convert(message);
  } catch (error) {
    if (signal?.aborted) throw abortReason(signal);
    throw MicrogptError.from(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    call.cancel(); // no-op once the call has ended
  }
}

// Like the microgpt CLI: the bearer token of every call, when none is given.
const AUTH_TOKEN_ENV = 'MICROGPT_AUTH_TOKEN';

// METADATA plus "authorization: Bearer <token>": the token is AUTH_TOKEN, or when that
// is undefined (or null) $MICROGPT_AUTH_TOKEN; '' sends none. An authorization entry in METADATA
// is an explicit choice too, so the environment does not add a second one.
function callMetadata(metadata, authToken) {
  const out = new grpc.Metadata();
  for (const [key, value] of Object.entries(metadata ?? {})) out.set(key, value);
  const hasAuthorization = out.get('authorization').length > 0;
  if (authToken != null && hasAuthorization) {
    throw new TypeError('give authToken or an authorization entry in metadata, not both');
  }
  // Trimmed like the CLI does: a token file or variable often ends with a newline.
  const token = (authToken ?? (hasAuthorization ? '' : process.env[AUTH_TOKEN_ENV] ?? '')).trim();
  if (token) out.set('authorization', `Bearer ${token}`);
  return out;
}

class BaseClient {
  /**
   * @param {string | undefined} address host:port; without it, like the microgpt CLI,
   *     $MICROGPT_GENERATOR or $MICROGPT_TRAINER, else localhost:50051 or localhost:50052
   * @param {object} [options] options.authToken, else $MICROGPT_AUTH_TOKEN, is sent as
   *     "authorization: Bearer <token>" on every call
   */
  constructor(address, options = {}, env = '', fallback = '') {
    const { credentials, channelOptions, protoDir, timeout, metadata, authToken } = options;
    address ||= process.env[env] || fallback;
    this.proto = loadProto(protoDir);
    this.timeout = timeout;
    this.metadata = callMetadata(metadata, authToken);
    this.address = address;
    this._credentials = credentials ?? grpc.credentials.createInsecure();
    this._channelOptions = channelOptions ?? {};
  }

  _makeStub(Service) {
    return new Service(this.address, this._credentials, this._channelOptions);
  }

  /** Resolves once the channel is connected; rejects with UNAVAILABLE after TIMEOUT ms. */
  waitForReady(timeout = 10000) {
    return new Promise((resolve, reject) => {
      this._stub.waitForReady(Date.now() + timeout, (error) => {
        if (error) reject(new MicrogptError(grpc.status.UNAVAILABLE, error.message));
        else resolve();
      });
    });
  }

  /** Closes the channel. */
  close() {
    this._stub.close();
  }
}

// --------------------------------------------------------------- Generator ---

/** Client of microgpt.v1.Generator. */
export class GeneratorClient extends BaseClient {
  constructor(address, options = {}) {
    super(address, options, 'MICROGPT_GENERATOR', 'localhost:50051');
    this._stub = this._makeStub(this.proto.Generator);
  }

  /**
   * Streams the tokens sampled after request.prompt, one object per generated token
   * (also when request.packTokens lets the server send several in one message).
   * Types: see index.d.ts (GenerateRequest, CallOptions, Token).
   */
  generate(request = {}, options = {}) {
    const message = pick(request, GENERATE_FIELDS, 'generate');
    const includeStop = Boolean(message.includeStop);
    return stream(this, this._stub, 'Generate', message,
      (m) => toTokens(m, includeStop), options);
  }

  /** Like generate, but waits for the end and resolves to the samples in index order. */
  async complete(request = {}, options = {}) {
    const samples = [];
    for await (const token of this.generate(request, options)) {
      const sample = (samples[token.sampleIndex] ??= { text: '', tokens: [] });
      sample.text += token.text;
      sample.tokens.push(token);
      if (token.finishReason) {
        Object.assign(sample, {
          finishReason: token.finishReason, model: token.model, version: token.version,
          promptTokens: token.promptTokens, generatedTokens: token.generatedTokens,
          seed: token.seed, stopSequence: token.stopSequence,
        });
      }
    }
    return samples.filter(Boolean);
  }

  /**
   * The logprob the model gives every token of each text (ScoreRequest):
   * { model, version, scores: [{ tokens, sumLogprob, meanLogprob, perplexity }] }.
   */
  async score(request = {}, options = {}) {
    const message = pick(request, SCORE_FIELDS, 'score');
    const response = await unary(this, this._stub, 'Score', message, options);
    return {
      model: response.model,
      version: response.version,
      scores: response.scores.map((s) => ({
        tokens: s.tokens.map(toScored),
        sumLogprob: s.sumLogprob,
        meanLogprob: s.meanLogprob,
        perplexity: s.perplexity,
      })),
    };
  }

  /** The models and versions the server has loaded. */
  async listModels(options = {}) {
    const response = await unary(this, this._stub, 'ListModels', {}, options);
    return response.models.map(toModel);
  }
}

// ----------------------------------------------------------------- Trainer ---

/** Client of microgpt.v1.Trainer. */
export class TrainerClient extends BaseClient {
  constructor(address, options = {}) {
    super(address, options, 'MICROGPT_TRAINER', 'localhost:50052');
    this._stub = this._makeStub(this.proto.Trainer);
  }

  /**
   * Starts a training job and resolves to its id. The dataset is `documents`
   * (strings, one document each) or `datasetPath` (relative to the trainer's --data_root).
   */
  async startTraining(request, options = {}) {
    const { documents, ...message } = pick(request, TRAINING_FIELDS, 'startTraining');
    if (documents !== undefined) {
      if (message.datasetPath !== undefined) {
        throw new TypeError('startTraining: give documents or datasetPath, not both');
      }
      if (!Array.isArray(documents)) throw new TypeError('startTraining: documents must be an array of strings');
      message.inlineDataset = { documents };
    }
    const response = await unary(this, this._stub, 'StartTraining', message, options);
    return response.jobId;
  }

  /** Streams the job's progress and publish events; the last one has type "finished". */
  watchTraining(jobId, options = {}) {
    return stream(this, this._stub, 'WatchTraining', { jobId }, (m) => [toEvent(m)], options);
  }

  /** Watches the job until it ends and resolves to its final state. */
  async waitForTraining(jobId, options = {}) {
    for await (const event of this.watchTraining(jobId, options)) {
      if (event.type === 'finished') return event.job;
    }
    return this.getTraining(jobId, options);
  }

  async getTraining(jobId, options = {}) {
    return toJob(await unary(this, this._stub, 'GetTraining', { jobId }, options));
  }

  /** Jobs since the server started, newest first. */
  async listTrainings(options = {}) {
    return (await unary(this, this._stub, 'ListTrainings', {}, options)).jobs.map(toJob);
  }

  /** Stops a running job after its current step; nothing partial is published. */
  async cancelTraining(jobId, options = {}) {
    return toJob(await unary(this, this._stub, 'CancelTraining', { jobId }, options));
  }

  /** Published versions in the checkpoint root, of `model` or of every model. */
  async listCheckpoints(model = '', options = {}) {
    const response = await unary(this, this._stub, 'ListCheckpoints', { model }, options);
    return response.checkpoints.map(toCheckpoint);
  }
}
