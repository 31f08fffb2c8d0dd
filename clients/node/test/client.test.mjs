// Tests of @microgpt/client against real servers (no mocks).
//
// tests/clients/node_client_test.sh trains two models, starts microgpt-generator,
// microgpt-trainer and a TLS microgpt-generator on one checkpoint root, all requiring one
// bearer token, and runs `node --test` with:
//   MICROGPT_GENERATOR      address of the generator (host:port)
//   MICROGPT_TRAINER        address of the trainer (host:port)
//   MICROGPT_MODEL          name of one of the two models the generator serves from the start
//   MICROGPT_AUTH_TOKEN     the servers' bearer token
//   MICROGPT_TLS_GENERATOR  address of the TLS generator (localhost:port)
//   MICROGPT_TLS_CA_FILE    its certificate (PEM)
// The tests skip when these are not set.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { GeneratorClient, MicrogptError, TrainerClient, grpc, status } from '../src/index.js';

const {
  MICROGPT_GENERATOR: GENERATOR, MICROGPT_TRAINER: TRAINER, MICROGPT_AUTH_TOKEN: TOKEN,
  MICROGPT_TLS_GENERATOR: TLS_GENERATOR, MICROGPT_TLS_CA_FILE: TLS_CA_FILE,
} = process.env;
const MODEL = process.env.MICROGPT_MODEL ?? '';
const SERVERS = Boolean(GENERATOR && TRAINER && MODEL && TOKEN && TLS_GENERATOR && TLS_CA_FILE);
const DOCUMENTS = ['anna', 'bob', 'carla', 'dave', 'emma', 'fred', 'gina', 'hank', 'ida',
  'jack', 'kate', 'leo', 'mia', 'ned', 'olga', 'paul'];

async function collect(iterable) {
  const items = [];
  for await (const item of iterable) items.push(item);
  return items;
}

function bySample(tokens) {
  const samples = new Map();
  for (const t of tokens) {
    if (!samples.has(t.sampleIndex)) samples.set(t.sampleIndex, []);
    samples.get(t.sampleIndex).push(t);
  }
  return samples;
}

/** Asserts that PROMISE rejects with a MicrogptError of CODE; returns the error. */
async function rejectsWithCode(promise, code) {
  let caught;
  await assert.rejects(promise, (error) => {
    caught = error;
    return error instanceof MicrogptError;
  });
  assert.equal(caught.codeName, Object.keys(status).find((k) => status[k] === code));
  assert.equal(caught.code, code);
  return caught;
}

const within = (ms, promise, what) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms).unref()),
]);

/** Runs FN with the environment variables of VALUES set (a string) or unset (undefined). */
async function withEnv(values, fn) {
  const saved = Object.fromEntries(Object.keys(values).map((name) => [name, process.env[name]]));
  const apply = (changes) => {
    for (const [name, value] of Object.entries(changes)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
  apply(values);
  try {
    return await fn();
  } finally {
    apply(saved);
  }
}

/** Calls FN(...clients) and closes the clients afterwards. */
async function using(clients, fn) {
  try {
    return await fn(...clients);
  } finally {
    for (const client of clients) client.close();
  }
}

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const README_BLOCKS = [...README.matchAll(/^```js\n(.*?)^```$/gms)].map((m) => m[1]);
// `console.log(...); // TEXT` in a README block: running the block prints TEXT.
const EXPECTED_OUTPUT = /console\.log\(.*\);?\s*\/\/\s*(.+?)\s*$/gm;

test('the README shows the example verbatim', () => {
  // The test script runs examples/stream.mjs against the generator.
  const example = readFileSync(new URL('../examples/stream.mjs', import.meta.url), 'utf8');
  assert.ok(README_BLOCKS.includes(example), 'README.md has examples/stream.mjs');
});

describe('the environment, like the CLI', { skip: !SERVERS && "the servers' environment is not set" }, () => {
  const unauthenticated = (promise) => rejectsWithCode(promise, status.UNAUTHENTICATED);

  test('a call without a token is UNAUTHENTICATED', async () => {
    await withEnv({ MICROGPT_AUTH_TOKEN: undefined }, () => using(
      [new GeneratorClient(GENERATOR), new TrainerClient(TRAINER)], async (generator, trainer) => {
        await unauthenticated(generator.listModels());
        await unauthenticated(collect(generator.generate({ model: MODEL })));
        await unauthenticated(trainer.listTrainings());
      }));
    // authToken '' sends none, whatever the environment holds.
    await using([new GeneratorClient(GENERATOR, { authToken: '' }), new TrainerClient(TRAINER, { authToken: '' })],
      async (generator, trainer) => {
        await unauthenticated(generator.listModels());
        await unauthenticated(collect(trainer.watchTraining('no-such-job')));
      });
    // The token alone makes the difference: the same calls with it pass.
    await using([new GeneratorClient(GENERATOR), new TrainerClient(TRAINER)], async (generator, trainer) => {
      await generator.listModels();
      await trainer.listTrainings();
    });
  });

  test('the token comes from the environment', async () => {
    await using([new GeneratorClient(GENERATOR), new TrainerClient(TRAINER)], async (generator, trainer) => {
      assert.ok((await generator.listModels()).some((m) => m.name === MODEL));
      assert.equal((await generator.complete({ model: MODEL, seed: 1 })).length, 1);
      assert.ok(Array.isArray(await trainer.listTrainings()));
      // Past authentication, the stream reaches the service: NOT_FOUND.
      await rejectsWithCode(collect(trainer.watchTraining('no-such-job')), status.NOT_FOUND);
    });
    // Trimmed like the CLI's, so a token with its file's newline works.
    await withEnv({ MICROGPT_AUTH_TOKEN: ` ${TOKEN}\n` }, () => using([new GeneratorClient(GENERATOR)],
      async (generator) => assert.ok((await generator.listModels()).length > 0)));
  });

  test('an explicit token wins over the environment', async () => {
    await withEnv({ MICROGPT_AUTH_TOKEN: 'not-the-token' }, async () => {
      await using([new GeneratorClient(GENERATOR)], (generator) => unauthenticated(generator.listModels()));
      await using([new GeneratorClient(GENERATOR, { authToken: TOKEN }), new TrainerClient(TRAINER, { authToken: TOKEN })],
        async (generator, trainer) => {
          assert.ok((await generator.listModels()).length > 0);
          assert.equal((await generator.complete({ model: MODEL, seed: 1 })).length, 1);
          await trainer.listTrainings();
        });
    });
    await using([
      new GeneratorClient(GENERATOR, { authToken: 'not-the-token' }),
      new TrainerClient(TRAINER, { authToken: 'not-the-token' }),
    ], async (generator, trainer) => {
      await unauthenticated(generator.listModels());
      await unauthenticated(trainer.listTrainings());
    });
  });

  test('authorization metadata is explicit too', async () => {
    const metadata = { authorization: `Bearer ${TOKEN}` };
    await withEnv({ MICROGPT_AUTH_TOKEN: 'not-the-token' }, () => using(
      [new GeneratorClient(GENERATOR, { metadata })],
      async (generator) => assert.ok((await generator.listModels()).length > 0)));
    // Other metadata goes along with the environment's token.
    await using([new TrainerClient(TRAINER, { metadata: { 'x-request-id': 'node-test' } })],
      (trainer) => trainer.listTrainings());
    assert.throws(() => new GeneratorClient(GENERATOR, { metadata, authToken: TOKEN }), TypeError);
  });

  test('TLS with the CA certificate', async () => {
    const credentials = grpc.credentials.createSsl(readFileSync(TLS_CA_FILE));
    await using([new GeneratorClient(TLS_GENERATOR, { credentials })],
      async (generator) => assert.equal((await generator.complete({ model: MODEL, seed: 1 })).length, 1));
    await using([new GeneratorClient(TLS_GENERATOR, { credentials, authToken: '' })],
      (generator) => unauthenticated(generator.listModels()));
  });

  test('the addresses come from the environment', async () => {
    await using([new GeneratorClient(), new TrainerClient()], async (generator, trainer) => {
      assert.deepEqual([generator.address, trainer.address], [GENERATOR, TRAINER]);
      assert.ok((await generator.listModels()).some((m) => m.name === MODEL));
      await trainer.listTrainings();
    });
    await withEnv({ MICROGPT_GENERATOR: undefined, MICROGPT_TRAINER: undefined }, () => using(
      [new GeneratorClient(), new TrainerClient()], (generator, trainer) => {
        assert.equal(generator.address, 'localhost:50051');
        assert.equal(trainer.address, 'localhost:50052');
      }));
  });

  test('explicit addresses win over the environment', async () => {
    await withEnv({ MICROGPT_GENERATOR: '127.0.0.1:1', MICROGPT_TRAINER: '127.0.0.1:1' }, () => using(
      [new GeneratorClient(GENERATOR), new TrainerClient(TRAINER)], async (generator, trainer) => {
        assert.deepEqual([generator.address, trainer.address], [GENERATOR, TRAINER]);
        assert.ok((await generator.listModels()).length > 0);
        await trainer.listTrainings();
      }));
  });
});

describe('Generator', { skip: !(GENERATOR && MODEL) && 'MICROGPT_GENERATOR/MICROGPT_MODEL not set' }, () => {
  let generator;
  before(async () => {
    generator = new GeneratorClient(GENERATOR, { timeout: 30000 });
    await generator.waitForReady(30000);
  });
  after(() => generator?.close());

  test('listModels', async () => {
    const models = await generator.listModels();
    const info = models.find((m) => m.name === MODEL);
    assert.ok(info, `model ${MODEL} listed`);
    assert.ok(info.versions.length >= 1);
    assert.equal(typeof info.versions[0].version, 'number');
    assert.ok(info.config.blockSize > 1);
    assert.equal(info.vocab.length + 1, info.config.vocabSize); // + BOS
  });

  test('streamed tokens end with a finish reason, model and version', async () => {
    const [info] = (await generator.listModels()).filter((m) => m.name === MODEL);
    const tokens = await collect(generator.generate({ model: MODEL, seed: 1, temperature: 1 }));
    assert.ok(tokens.length >= 1);
    for (const t of tokens.slice(0, -1)) {
      assert.equal(t.finishReason, null);
      assert.equal(t.text.length, 1);
    }
    const last = tokens.at(-1);
    assert.ok(['bos', 'max_tokens', 'block_size'].includes(last.finishReason), last.finishReason);
    assert.equal(last.model, MODEL);
    assert.equal(last.version, info.versions[0].version);
    assert.deepEqual(tokens.map((t) => t.position), tokens.map((_, i) => i + 1));
  });

  test('samples interleave and each ends', async () => {
    const tokens = await collect(generator.generate({ model: MODEL, seed: 3, numSamples: 5 }));
    const samples = bySample(tokens);
    assert.deepEqual([...samples.keys()].sort(), [0, 1, 2, 3, 4]);
    for (const sample of samples.values()) {
      assert.deepEqual(sample.map((t) => t.finishReason !== null),
        sample.map((_, i) => i === sample.length - 1));
    }
  });

  test('packed messages give the same tokens', async () => {
    const request = { model: MODEL, seed: 77, numSamples: 3, temperature: 1, topLogprobs: 2 };
    const unpacked = await collect(generator.generate(request));
    const packed = await collect(generator.generate({ ...request, packTokens: true }));
    const bySampleSorted = (tokens) => [...bySample(tokens)].sort((a, b) => a[0] - b[0]);
    assert.deepEqual(bySampleSorted(packed), bySampleSorted(unpacked));
  });

  test('stop sequences, usage and shaping', async () => {
    const base = { model: MODEL, seed: 5, numSamples: 4, temperature: 1 };
    const plain = await generator.complete(base);
    plain.forEach((sample, i) => {
      assert.equal(sample.seed, String(5 + i));
      assert.equal(sample.promptTokens, 0);
      assert.equal(sample.generatedTokens, [...sample.text].length + 1); // and BOS
    });
    const i = plain.reduce((best, s, k) => (s.text.length > plain[best].text.length ? k : best), 0);
    assert.ok(plain[i].text.length >= 3);
    const stop = plain[i].text.slice(1, 3);
    for (const packTokens of [false, true]) {
      for (const includeStop of [false, true]) {
        const stopped = await generator.complete({ ...base, stop: [stop], includeStop, packTokens });
        const at = plain[i].text.indexOf(stop);
        assert.equal(stopped[i].text, plain[i].text.slice(0, at + (includeStop ? stop.length : 0)));
        assert.equal(stopped[i].finishReason, 'stop_sequence');
        assert.equal(stopped[i].stopSequence, stop);
        assert.equal(stopped[i].tokens.at(-1).id >= 0, includeStop);
      }
    }
    const shaped = {
      ...base, minP: 0.1, repetitionPenalty: 1.3, presencePenalty: 0.5, frequencyPenalty: 0.2,
      logitBias: { '': -2, a: 1 }, minTokens: 2, timeLimitMs: 60000,
    };
    const texts = (samples) => samples.map((s) => s.text);
    assert.deepEqual(texts(await generator.complete(shaped)), texts(await generator.complete(shaped)));
    for (const sample of await generator.complete({ ...base, regex: '[aeiou][a-z]{1,3}' })) {
      if (sample.finishReason === 'bos') assert.match(sample.text, /^[aeiou][a-z]{1,3}$/);
    }
    await assert.rejects(generator.complete({ ...base, logitBias: { ab: 1 } }),
      (error) => error.code === status.INVALID_ARGUMENT && /logit_bias/.test(error.message));
  });

  test('score and promptLogprobs', async () => {
    const { scores } = await generator.score({ model: MODEL, texts: ['emma', 'ava'], topLogprobs: 2 });
    assert.equal(scores.length, 2);
    assert.deepEqual(scores[0].tokens.map((t) => t.text), ['e', 'm', 'm', 'a', '']);
    assert.ok(Math.abs(scores[0].sumLogprob - scores[0].tokens.reduce((a, t) => a + t.logprob, 0)) < 1e-4);
    for (const packTokens of [false, true]) {
      const tokens = await collect(generator.generate({
        model: MODEL, prompt: 'emma', seed: 1, promptLogprobs: true, packTokens,
      }));
      const prompt = tokens.flatMap((t) => t.promptLogprobs);
      assert.deepEqual(prompt.map((p) => p.text), ['e', 'm', 'm', 'a']);
      prompt.forEach((p, i) => assert.ok(Math.abs(p.logprob - scores[0].tokens[i].logprob) < 1e-4));
    }
    await assert.rejects(generator.score({ model: MODEL, texts: [] }),
      (error) => error.code === status.INVALID_ARGUMENT);
  });

  test('seeded determinism', async () => {
    const request = { model: MODEL, seed: 12345, numSamples: 4, temperature: 1, topLogprobs: 2 };
    const key = (tokens) => [...bySample(tokens)].sort((a, b) => a[0] - b[0])
      .map(([i, s]) => [i, s.map((t) => [t.id, t.text, t.position])]);
    const first = await collect(generator.generate(request));
    const second = await collect(generator.generate(request));
    assert.deepEqual(key(first), key(second));
    // Sample i uses seed + i; a BigInt seed is accepted too.
    const samples = await generator.complete({ model: MODEL, seed: 12345, numSamples: 4, temperature: 1 });
    const shifted = await generator.complete({ model: MODEL, seed: 12346n, temperature: 1 });
    assert.equal(shifted[0].text, samples[1].text);
  });

  test('temperature 0 is sent (greedy), not dropped as a default', async () => {
    const texts = new Set();
    for (let seed = 0; seed < 5; seed++) {
      const [sample] = await generator.complete({ model: MODEL, seed, temperature: 0 });
      texts.add(sample.text);
    }
    assert.equal(texts.size, 1);
  });

  test('prompt, maxTokens, topK, topP, topLogprobs', async () => {
    const [info] = (await generator.listModels()).filter((m) => m.name === MODEL);
    const prompt = info.vocab[0];
    const samples = await generator.complete({
      model: MODEL, prompt, seed: 5, maxTokens: 2, topK: 3, topP: 0.9, numSamples: 3, topLogprobs: 3,
    });
    assert.equal(samples.length, 3);
    for (const sample of samples) {
      assert.ok(sample.tokens.length <= 2);
      assert.ok(['bos', 'max_tokens'].includes(sample.finishReason));
      assert.equal(sample.tokens[0].position, 1 + prompt.length);
      for (const t of sample.tokens) {
        assert.equal(t.topLogprobs.length, 3);
        const lp = t.topLogprobs.map((a) => a.logprob);
        assert.deepEqual(lp, [...lp].sort((a, b) => b - a));
      }
    }
  });

  test('INVALID_ARGUMENT surfaces with code and message', async () => {
    const error = await rejectsWithCode(collect(generator.generate({ model: MODEL, topP: 1.5 })),
      status.INVALID_ARGUMENT);
    assert.match(error.details, /top_p/);
    assert.match(error.message, /^INVALID_ARGUMENT: /);
  });

  test('a misspelt field is refused by the client, at the call', () => {
    assert.throws(() => generator.generate({ model: MODEL, top_p: 0.5 }), TypeError);
  });

  test('a generator of two models needs the model named', async () => {
    const error = await rejectsWithCode(collect(generator.generate({ seed: 1 })), status.INVALID_ARGUMENT);
    assert.match(error.details, /model must be set/);
  });

  test('unknown model is NOT_FOUND', async () => {
    const error = await rejectsWithCode(collect(generator.generate({ model: 'no-such-model' })),
      status.NOT_FOUND);
    assert.match(error.details, /no-such-model/);
  });

  test('deadline exceeded', async () => {
    await rejectsWithCode(collect(generator.generate({ model: MODEL, numSamples: 64 }, { timeout: 0 })),
      status.DEADLINE_EXCEEDED);
  });

  test('unavailable server', async () => {
    const nowhere = new GeneratorClient('127.0.0.1:1');
    try {
      await rejectsWithCode(nowhere.listModels({ timeout: 5000 }), status.UNAVAILABLE);
    } finally {
      nowhere.close();
    }
  });

  test('break cancels the stream', async () => {
    await within(20000, (async () => {
      for (let i = 0; i < 20; i++) {
        for await (const token of generator.generate({ model: MODEL, numSamples: 64 })) {
          assert.equal(typeof token.text, 'string');
          break;
        }
      }
    })(), 'break');
    assert.ok((await generator.complete({ model: MODEL, seed: 1 })).length === 1);
  });

  test('AbortSignal cancels the stream with an AbortError', async () => {
    const controller = new AbortController();
    let received = 0;
    await within(10000, assert.rejects((async () => {
      for await (const token of generator.generate({ model: MODEL, numSamples: 64 },
        { signal: controller.signal })) {
        received += 1;
        if (token) controller.abort();
        await new Promise((resolve) => setTimeout(resolve, 1)); // a slow consumer
      }
    })(), { name: 'AbortError' }), 'abort');
    assert.equal(received, 1);
  });

  test('AbortSignal aborted from outside while waiting', async () => {
    const controller = new AbortController();
    const reason = new Error('stop now');
    const iterator = generator.generate({ model: MODEL, numSamples: 64 }, { signal: controller.signal });
    await iterator.next();
    controller.abort(reason);
    await within(10000, assert.rejects(collect(iterator), (error) => error === reason), 'abort');
  });

  test('an aborted signal rejects before any call', async () => {
    const signal = AbortSignal.abort();
    await assert.rejects(collect(generator.generate({ model: MODEL }, { signal })), { name: 'AbortError' });
    await assert.rejects(generator.listModels({ signal }), { name: 'AbortError' });
  });
});

// Before the Trainer tests, so that the generator serves just the two models the blocks show.
describe('README', { skip: !SERVERS && "the servers' environment is not set" }, () => {
  // As a reader would paste them: each block a module of its own in a scratch project
  // that has this package installed (npm links a local package the same way) and holds the
  // token file and CA certificate the blocks name; the clients find the servers and the
  // token in the environment. Blocks that read ca.pem dial the TLS generator.
  let scratch;
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'microgpt-node-readme-'));
    mkdirSync(join(scratch, 'node_modules', '@microgpt'), { recursive: true });
    symlinkSync(fileURLToPath(new URL('..', import.meta.url)), join(scratch, 'node_modules', '@microgpt', 'client'), 'dir');
    writeFileSync(join(scratch, 'token'), `${TOKEN}\n`);
    copyFileSync(TLS_CA_FILE, join(scratch, 'ca.pem'));
  });
  after(() => scratch && rmSync(scratch, { recursive: true, force: true }));

  test('has the blocks', () => assert.ok(README_BLOCKS.length >= 5, `${README_BLOCKS.length} js blocks`));

  README_BLOCKS.forEach((block, index) => {
    test(`block ${index + 1} runs: ${block.split('\n').find((line) => line && !/^(import|\/\/)/.test(line))}`, () => {
      const file = join(scratch, `block-${index + 1}.mjs`);
      writeFileSync(file, block);
      const env = { ...process.env };
      if (block.includes('ca.pem')) env.MICROGPT_GENERATOR = TLS_GENERATOR;
      const run = spawnSync(process.execPath, [file], { cwd: scratch, env, encoding: 'utf8', timeout: 120000 });
      assert.equal(run.status, 0, run.stderr);
      assert.ok(run.stdout, 'the block printed nothing');
      for (const [, expected] of block.matchAll(EXPECTED_OUTPUT)) {
        assert.ok(run.stdout.includes(expected), `prints ${JSON.stringify(expected)}:\n${run.stdout}`);
      }
    });
  });
});

describe('Trainer', { skip: !(GENERATOR && TRAINER) && 'MICROGPT_GENERATOR/MICROGPT_TRAINER not set' }, () => {
  let trainer;
  let generator;
  before(async () => {
    trainer = new TrainerClient(TRAINER, { timeout: 30000 });
    await trainer.waitForReady(30000);
    generator = new GeneratorClient(GENERATOR, { timeout: 30000 });
  });
  after(() => {
    trainer?.close();
    generator?.close();
  });

  test('startTraining with an inline dataset, watch to finished', async () => {
    const name = 'node-inline';
    const jobId = await trainer.startTraining({
      model: name, documents: DOCUMENTS, steps: 30, checkpointEvery: 10, seed: 7,
      config: { blockSize: 8 },
    });
    assert.ok(jobId);
    const events = await collect(trainer.watchTraining(jobId, { timeout: 120000 }));
    const last = events.at(-1);
    assert.equal(last.type, 'finished');
    assert.equal(last.job.state, 'succeeded', last.job.error);
    assert.equal(last.job.jobId, jobId);
    assert.equal(last.job.progress.step, 30);
    assert.equal(last.job.request.model, name);
    // The job is quick: the watch may join late, and a late watcher first gets the
    // latest progress, so earlier events can be missing.
    const progress = events.filter((e) => e.type === 'progress').map((e) => e.progress);
    assert.ok(progress.length > 0);
    assert.ok(progress.every((p) => p.totalSteps === 30));
    const published = events.filter((e) => e.type === 'checkpointPublished').map((e) => e.checkpoint.step);
    assert.deepEqual(published, [10, 20, 30].slice(3 - published.length));

    assert.equal((await trainer.getTraining(jobId)).state, 'succeeded');
    assert.ok((await trainer.listTrainings()).some((j) => j.jobId === jobId));
    const checkpoints = (await trainer.listCheckpoints(name)).sort((a, b) => a.step - b.step);
    assert.deepEqual(checkpoints.map((c) => c.step), [10, 20, 30]);
    assert.equal(last.job.latestVersion, checkpoints.at(-1).version);

    // The generator shares the checkpoint root and picks the new versions up (polling;
    // it may load an earlier version of the job first).
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline) {
      const models = await generator.listModels();
      if (models.find((m) => m.name === name)?.versions[0].version === last.job.latestVersion) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const samples = await generator.complete({ model: name, seed: 1, numSamples: 2 });
    assert.deepEqual(samples.map((s) => s.model), [name, name]);
    assert.equal(samples[0].version, last.job.latestVersion);
  });

  test('cancelTraining, and FAILED_PRECONDITION while a job runs', async () => {
    const jobId = await trainer.startTraining({ model: 'node-cancel', documents: DOCUMENTS, steps: 1000000 });
    try {
      await rejectsWithCode(trainer.startTraining({ model: 'node-other', documents: DOCUMENTS, steps: 10 }),
        status.FAILED_PRECONDITION);
    } finally {
      await trainer.cancelTraining(jobId);
    }
    const job = await trainer.waitForTraining(jobId, { timeout: 60000 });
    assert.equal(job.state, 'cancelled');
    // The step reached is published (nothing when the cancel came before the
    // first step).
    assert.deepEqual((await trainer.listCheckpoints('node-cancel')).map((c) => c.version),
      job.latestVersion > 0 ? [job.latestVersion] : []);
  });

  test('watchTraining sees the checkpoints of a running job, stops on abort', async () => {
    const jobId = await trainer.startTraining({
      model: 'node-long', documents: DOCUMENTS, steps: 1000000, checkpointEvery: 50,
    });
    let seen;
    try {
      const controller = new AbortController();
      await within(30000, assert.rejects((async () => {
        for await (const event of trainer.watchTraining(jobId, { signal: controller.signal })) {
          if (event.type === 'checkpointPublished') {
            seen = event.checkpoint;
            controller.abort(); // cancels the watch, not the job
          }
        }
      })(), { name: 'AbortError' }), 'watch abort');
      assert.equal((await trainer.getTraining(jobId)).state, 'running');
    } finally {
      await trainer.cancelTraining(jobId);
    }
    assert.equal(seen.model, 'node-long');
    assert.equal(seen.step % 50, 0);
    assert.equal((await trainer.waitForTraining(jobId, { timeout: 60000 })).state, 'cancelled');
    // Versions published before the cancel stay.
    assert.ok((await trainer.listCheckpoints('node-long')).some((c) => c.version === seen.version));
  });

  test('invalid model name is INVALID_ARGUMENT', async () => {
    const error = await rejectsWithCode(
      trainer.startTraining({ model: 'not a name!', documents: DOCUMENTS, steps: 10 }),
      status.INVALID_ARGUMENT);
    assert.ok(error.details.length > 0);
  });

  test('unknown job is NOT_FOUND', async () => {
    await rejectsWithCode(trainer.getTraining('no-such-job'), status.NOT_FOUND);
    await rejectsWithCode(collect(trainer.watchTraining('no-such-job')), status.NOT_FOUND);
  });

  test('documents or datasetPath', async () => {
    await assert.rejects(trainer.startTraining({ model: 'x', documents: ['a'], datasetPath: 'a.txt' }), TypeError);
    await assert.rejects(trainer.startTraining({ model: 'x', documents: 'one string' }), TypeError);
  });
});
