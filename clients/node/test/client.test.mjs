// Tests of @microgpt/client against real servers (no mocks).
//
// tests/clients/node_client_test.sh trains a model, starts microgpt-generator and
// microgpt-trainer on one checkpoint root and runs `node --test` with:
//   MICROGPT_GENERATOR  address of the generator (host:port)
//   MICROGPT_TRAINER    address of the trainer (host:port)
//   MICROGPT_MODEL      name of the model the generator serves from the start
// The tests skip when these are not set.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { GeneratorClient, MicrogptError, TrainerClient, status } from '../src/index.js';

const { MICROGPT_GENERATOR: GENERATOR, MICROGPT_TRAINER: TRAINER } = process.env;
const MODEL = process.env.MICROGPT_MODEL ?? '';
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

test('the README shows the example verbatim', () => {
  // The test script runs examples/stream.mjs against the generator.
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const example = readFileSync(new URL('../examples/stream.mjs', import.meta.url), 'utf8');
  assert.ok(readme.includes('```js\n' + example + '```'), 'README.md has examples/stream.mjs');
});

describe('Generator', { skip: !(GENERATOR && MODEL) && 'MICROGPT_GENERATOR/MICROGPT_MODEL not set' }, () => {
  let generator;
  before(async () => {
    generator = new GeneratorClient(GENERATOR, { timeout: 30000 });
    await generator.waitForReady(30000);
  });
  after(() => generator?.close());

  test('the address defaults to the environment, like the CLI', async () => {
    const fromEnv = new GeneratorClient();
    try {
      assert.equal(fromEnv.address, GENERATOR);
      assert.ok((await fromEnv.listModels()).some((m) => m.name === MODEL));
    } finally {
      fromEnv.close();
    }
    const saved = { ...process.env };
    delete process.env.MICROGPT_GENERATOR;
    delete process.env.MICROGPT_TRAINER;
    try {
      const generatorDefault = new GeneratorClient();
      const trainerDefault = new TrainerClient();
      assert.equal(generatorDefault.address, 'localhost:50051');
      assert.equal(trainerDefault.address, 'localhost:50052');
      generatorDefault.close();
      trainerDefault.close();
    } finally {
      Object.assign(process.env, saved);
    }
  });

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
    assert.deepEqual(await trainer.listCheckpoints('node-cancel'), []);
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
