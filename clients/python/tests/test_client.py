"""Tests of microgpt_client against real servers (no mocks).

tests/clients/python_client_test.sh trains two models, starts microgpt-generator,
microgpt-trainer and a TLS microgpt-generator on one checkpoint root, all requiring one
bearer token, and runs this file with:
  MICROGPT_GENERATOR      address of the generator (host:port)
  MICROGPT_TRAINER        address of the trainer (host:port)
  MICROGPT_MODEL          name of one of the two models the generator serves from the start
  MICROGPT_AUTH_TOKEN     the servers' bearer token
  MICROGPT_TLS_GENERATOR  address of the TLS generator (localhost:port)
  MICROGPT_TLS_CA_FILE    its certificate (PEM)
The tests skip when these are not set.
"""

import contextlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

from microgpt_client import (FinishReason, Generator, JobState, MicrogptError, Token,
                             Trainer)

HERE = pathlib.Path(__file__).resolve().parent
GENERATOR = os.environ.get("MICROGPT_GENERATOR")
TRAINER = os.environ.get("MICROGPT_TRAINER")
MODEL = os.environ.get("MICROGPT_MODEL", "")
TOKEN = os.environ.get("MICROGPT_AUTH_TOKEN", "")
TLS_GENERATOR = os.environ.get("MICROGPT_TLS_GENERATOR")
TLS_CA_FILE = os.environ.get("MICROGPT_TLS_CA_FILE")
SERVERS = bool(GENERATOR and TRAINER and MODEL and TOKEN and TLS_GENERATOR and TLS_CA_FILE)

DOCUMENTS = ["anna", "bob", "carla", "dave", "emma", "fred", "gina", "hank", "ida", "jack",
             "kate", "leo", "mia", "ned", "olga", "paul"]


def _samples(tokens):
    """Groups streamed tokens by sample_index."""
    samples = {}
    for token in tokens:
        samples.setdefault(token.sample_index, []).append(token)
    return samples


@contextlib.contextmanager
def _environ(**values):
    """Sets (a string) or unsets (None) environment variables for the block."""
    saved = {name: os.environ.get(name) for name in values}

    def apply(changes):
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    apply(values)
    try:
        yield
    finally:
        apply(saved)


README = (HERE.parent / "README.md").read_text()
README_BLOCKS = re.findall(r"^```python\n(.*?)^```$", README, re.DOTALL | re.MULTILINE)
# `print(...)  # TEXT` in a README block: running the block prints TEXT.
EXPECTED_OUTPUT = re.compile(r"^\s*print\(.*\)\s+#\s*(.+?)\s*$", re.MULTILINE)


class ReadmeTest(unittest.TestCase):
    def test_readme_shows_the_example_verbatim(self):
        # The test script runs examples/stream.py against the generator.
        example = (HERE.parent / "examples" / "stream.py").read_text()
        self.assertIn(example, README_BLOCKS)

    @unittest.skipUnless(SERVERS, "the servers' environment is not set")
    def test_every_python_block_runs(self):
        # As a reader would paste them: each block on its own, in a directory holding the
        # token file and CA certificate the blocks name; the clients find the servers and
        # the token in the environment. Blocks that read ca.pem dial the TLS generator.
        self.assertGreaterEqual(len(README_BLOCKS), 6)
        with tempfile.TemporaryDirectory() as scratch:
            pathlib.Path(scratch, "token").write_text(TOKEN + "\n")
            shutil.copy(TLS_CA_FILE, pathlib.Path(scratch, "ca.pem"))
            for number, block in enumerate(README_BLOCKS, 1):
                with self.subTest(block=number, first_line=block.splitlines()[0]):
                    env = dict(os.environ)
                    if "ca.pem" in block:
                        env["MICROGPT_GENERATOR"] = TLS_GENERATOR
                    run = subprocess.run([sys.executable, "-c", block], cwd=scratch, env=env,
                                         capture_output=True, text=True, timeout=120)
                    self.assertEqual(run.returncode, 0, run.stderr)
                    self.assertTrue(run.stdout, "the block printed nothing")
                    for expected in EXPECTED_OUTPUT.findall(block):
                        self.assertIn(expected, run.stdout)


@unittest.skipUnless(SERVERS, "the servers' environment is not set")
class EnvironmentTest(unittest.TestCase):
    """Like the microgpt CLI, the clients take the addresses and the bearer token from the
    environment; explicit arguments win."""

    def assertUnauthenticated(self, call):
        with self.assertRaises(MicrogptError) as caught:
            call()
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAUTHENTICATED)

    def test_a_call_without_a_token_is_unauthenticated(self):
        with _environ(MICROGPT_AUTH_TOKEN=None):
            with Generator(GENERATOR) as generator, Trainer(TRAINER) as trainer:
                self.assertUnauthenticated(generator.list_models)
                self.assertUnauthenticated(lambda: list(generator.generate(model=MODEL)))
                self.assertUnauthenticated(trainer.list_trainings)
        # auth_token="" sends none, whatever the environment holds.
        with Generator(GENERATOR, auth_token="") as generator, \
                Trainer(TRAINER, auth_token="") as trainer:
            self.assertUnauthenticated(generator.list_models)
            self.assertUnauthenticated(lambda: list(trainer.watch("no-such-job")))
        # The token alone makes the difference: the same calls with it pass.
        with Generator(GENERATOR) as generator, Trainer(TRAINER) as trainer:
            generator.list_models()
            trainer.list_trainings()

    def test_the_token_comes_from_the_environment(self):
        with Generator(GENERATOR) as generator, Trainer(TRAINER) as trainer:
            self.assertIn(MODEL, [m.name for m in generator.list_models()])
            self.assertTrue(generator.complete(model=MODEL, seed=1))
            self.assertIsInstance(trainer.list_trainings(), list)
            # Past authentication, the stream reaches the service: NOT_FOUND.
            with self.assertRaises(MicrogptError) as caught:
                list(trainer.watch("no-such-job"))
            self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        # Stripped like the CLI's, so a token with its file's newline works.
        with _environ(MICROGPT_AUTH_TOKEN=f" {TOKEN}\n"), Generator(GENERATOR) as generator:
            self.assertTrue(generator.list_models())

    def test_an_explicit_token_wins_over_the_environment(self):
        with _environ(MICROGPT_AUTH_TOKEN="not-the-token"):
            with Generator(GENERATOR) as generator:
                self.assertUnauthenticated(generator.list_models)
            with Generator(GENERATOR, auth_token=TOKEN) as generator, \
                    Trainer(TRAINER, auth_token=TOKEN) as trainer:
                self.assertTrue(generator.list_models())
                self.assertTrue(generator.complete(model=MODEL, seed=1))
                trainer.list_trainings()
        with Generator(GENERATOR, auth_token="not-the-token") as generator, \
                Trainer(TRAINER, auth_token="not-the-token") as trainer:
            self.assertUnauthenticated(generator.list_models)
            self.assertUnauthenticated(trainer.list_trainings)

    def test_authorization_metadata_is_explicit_too(self):
        bearer = ("authorization", f"Bearer {TOKEN}")
        with _environ(MICROGPT_AUTH_TOKEN="not-the-token"):
            with Generator(GENERATOR, metadata=[bearer]) as generator:
                self.assertTrue(generator.list_models())
        # Other metadata goes along with the environment's token.
        with Trainer(TRAINER, metadata=[("x-request-id", "py-test")]) as trainer:
            trainer.list_trainings()
        with self.assertRaises(ValueError):
            Generator(GENERATOR, metadata=[bearer], auth_token=TOKEN)

    def test_tls_with_the_ca_certificate(self):
        credentials = grpc.ssl_channel_credentials(pathlib.Path(TLS_CA_FILE).read_bytes())
        with Generator(TLS_GENERATOR, credentials=credentials) as generator:
            self.assertTrue(generator.complete(model=MODEL, seed=1))
        with Generator(TLS_GENERATOR, credentials=credentials, auth_token="") as generator:
            self.assertUnauthenticated(generator.list_models)

    def test_addresses_come_from_the_environment(self):
        with Generator() as generator, Trainer() as trainer:
            self.assertEqual((generator.address, trainer.address), (GENERATOR, TRAINER))
            self.assertIn(MODEL, [m.name for m in generator.list_models()])
            trainer.list_trainings()
        with _environ(MICROGPT_GENERATOR=None, MICROGPT_TRAINER=None):
            with Generator() as generator, Trainer() as trainer:
                self.assertEqual(generator.address, "localhost:50051")
                self.assertEqual(trainer.address, "localhost:50052")

    def test_explicit_addresses_win_over_the_environment(self):
        with _environ(MICROGPT_GENERATOR="127.0.0.1:1", MICROGPT_TRAINER="127.0.0.1:1"):
            with Generator(GENERATOR) as generator, Trainer(TRAINER) as trainer:
                self.assertEqual((generator.address, trainer.address), (GENERATOR, TRAINER))
                self.assertTrue(generator.list_models())
                trainer.list_trainings()


@unittest.skipUnless(GENERATOR and MODEL, "MICROGPT_GENERATOR and MICROGPT_MODEL not set")
class GeneratorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.generator = Generator(GENERATOR, timeout=30)
        cls.generator.wait_ready(timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.generator.close()

    def test_list_models(self):
        models = {m.name: m for m in self.generator.list_models()}
        self.assertIn(MODEL, models)
        info = models[MODEL]
        self.assertGreaterEqual(len(info.versions), 1)
        self.assertEqual(info.latest_version, info.versions[0].version)
        self.assertEqual(sorted((v.version for v in info.versions), reverse=True),
                         [v.version for v in info.versions])
        self.assertGreater(info.config.block_size, 1)
        self.assertGreater(len(info.vocab), 0)
        self.assertEqual(len(info.vocab) + 1, info.config.vocab_size)  # + BOS

    def test_stream_ends_with_finish_reason_and_model_version(self):
        latest = {m.name: m.latest_version for m in self.generator.list_models()}[MODEL]
        tokens = list(self.generator.generate(model=MODEL, seed=1, temperature=1.0))
        self.assertGreaterEqual(len(tokens), 1)
        self.assertTrue(all(isinstance(t, Token) for t in tokens))
        for token in tokens[:-1]:
            self.assertIsNone(token.finish_reason)
            self.assertFalse(token.is_last)
            self.assertEqual(len(token.text), 1)
        last = tokens[-1]
        self.assertTrue(last.is_last)
        self.assertIn(last.finish_reason,
                      (FinishReason.BOS, FinishReason.MAX_TOKENS, FinishReason.BLOCK_SIZE))
        self.assertEqual(last.model, MODEL)
        self.assertEqual(last.version, latest)
        if last.finish_reason == "bos":
            self.assertEqual(last.text, "")
        self.assertEqual([t.position for t in tokens], list(range(1, len(tokens) + 1)))

    def test_num_samples_interleave_and_each_ends(self):
        tokens = list(self.generator.generate(model=MODEL, seed=3, num_samples=5))
        samples = _samples(tokens)
        self.assertEqual(sorted(samples), [0, 1, 2, 3, 4])
        for sample in samples.values():
            self.assertEqual([t.is_last for t in sample], [False] * (len(sample) - 1) + [True])
            self.assertEqual(sample[-1].model, MODEL)

    def test_seeded_determinism(self):
        request = dict(model=MODEL, seed=12345, num_samples=4, temperature=1.0,
                       top_logprobs=2)
        first = list(self.generator.generate(**request))
        second = list(self.generator.generate(**request))
        key = lambda tokens: {i: [(t.id, t.text, t.position) for t in s]
                              for i, s in _samples(tokens).items()}
        self.assertEqual(key(first), key(second))
        # Sample i uses seed + i.
        samples = self.generator.complete(model=MODEL, seed=12345, num_samples=4,
                                          temperature=1.0)
        shifted = self.generator.complete(model=MODEL, seed=12346, temperature=1.0)
        self.assertEqual(shifted[0].text, samples[1].text)

    def test_packed_messages_give_the_same_tokens(self):
        request = dict(model=MODEL, seed=77, num_samples=3, temperature=1.0, top_logprobs=2)
        unpacked = list(self.generator.generate(**request))
        packed = list(self.generator.generate(pack_tokens=True, **request))
        # Token equality leaves out raw, the message that carried the token.
        self.assertEqual(_samples(packed), _samples(unpacked))
        self.assertTrue(all(t.raw.tokens for t in packed))
        self.assertFalse(any(t.raw.tokens for t in unpacked))

    def test_stop_sequences_usage_and_shaping(self):
        base = dict(model=MODEL, seed=5, num_samples=4, temperature=1.0)
        plain = self.generator.complete(**base)
        for sample in plain:
            self.assertEqual(sample.seed, 5 + plain.index(sample))
            self.assertEqual(sample.prompt_tokens, 0)
            self.assertEqual(sample.generated_tokens, len(sample.text) + 1)  # and BOS
        i = max(range(len(plain)), key=lambda k: len(plain[k].text))
        self.assertGreaterEqual(len(plain[i].text), 3)
        stop = plain[i].text[1:3]
        for pack in (False, True):
            for include in (False, True):
                stopped = self.generator.complete(stop=[stop], include_stop=include,
                                                  pack_tokens=pack, **base)
                first = stopped[i]
                at = plain[i].text.find(stop)
                self.assertEqual(first.text, plain[i].text[:at + (len(stop) if include else 0)])
                self.assertEqual(first.finish_reason, "stop_sequence")
                self.assertEqual(first.stop_sequence, stop)
                self.assertEqual(first.tokens[-1].id >= 0, include)
        shaped = self.generator.complete(min_p=0.1, repetition_penalty=1.3,
                                         presence_penalty=0.5, frequency_penalty=0.2,
                                         logit_bias={"": -2.0, "a": 1.0}, min_tokens=2,
                                         time_limit_ms=60000, **base)
        self.assertEqual(shaped, self.generator.complete(
            min_p=0.1, repetition_penalty=1.3, presence_penalty=0.5, frequency_penalty=0.2,
            logit_bias={"": -2.0, "a": 1.0}, min_tokens=2, time_limit_ms=60000, **base))
        self.assertTrue(all(s.generated_tokens >= 2 for s in shaped))
        for sample in self.generator.complete(regex="[aeiou][a-z]{1,3}", **base):
            if sample.finish_reason == "bos":
                self.assertRegex(sample.text, r"\A[aeiou][a-z]{1,3}\Z")
        with self.assertRaises(MicrogptError) as raised:
            self.generator.complete(logit_bias={"ab": 1.0}, **base)
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("logit_bias", raised.exception.message)

    def test_score_and_prompt_logprobs(self):
        scores = self.generator.score(["emma", "ava"], model=MODEL, top_logprobs=2)
        self.assertEqual(len(scores), 2)
        self.assertEqual([t.text for t in scores[0].tokens], ["e", "m", "m", "a", ""])
        self.assertAlmostEqual(scores[0].sum_logprob,
                               sum(t.logprob for t in scores[0].tokens), places=4)
        self.assertTrue(all(len(t.top_logprobs) == 2 for t in scores[0].tokens))
        for pack in (False, True):
            tokens = list(self.generator.generate("emma", model=MODEL, seed=1,
                                                  prompt_logprobs=True, pack_tokens=pack))
            prompt = [p for t in tokens for p in t.prompt_logprobs]
            self.assertEqual([p.text for p in prompt], ["e", "m", "m", "a"])
            for p, s in zip(prompt, scores[0].tokens):
                self.assertAlmostEqual(p.logprob, s.logprob, places=4)
        with self.assertRaises(MicrogptError) as raised:
            self.generator.score([], model=MODEL)
        self.assertEqual(raised.exception.code, grpc.StatusCode.INVALID_ARGUMENT)

    def test_temperature_zero_is_sent_and_greedy(self):
        # temperature is a proto3 optional: 0 must reach the server as "greedy", not "unset".
        texts = {s.text for seed in range(5)
                 for s in self.generator.complete(model=MODEL, seed=seed, temperature=0)}
        self.assertEqual(len(texts), 1)

    def test_prompt_max_tokens_top_k_top_p(self):
        info = {m.name: m for m in self.generator.list_models()}[MODEL]
        prompt = info.vocab[0]
        samples = self.generator.complete(prompt, model=MODEL, seed=5, max_tokens=2, top_k=3,
                                          top_p=0.9, num_samples=3)
        self.assertEqual(len(samples), 3)
        for sample in samples:
            self.assertLessEqual(len(sample.tokens), 2)
            self.assertIn(sample.finish_reason, ("bos", "max_tokens"))
            self.assertEqual(sample.tokens[0].position, 1 + len(prompt))

    def test_top_logprobs(self):
        tokens = list(self.generator.generate(model=MODEL, seed=9, top_logprobs=3))
        for token in tokens:
            self.assertEqual(len(token.top_logprobs), 3)
            logprobs = [alt.logprob for alt in token.top_logprobs]
            self.assertEqual(logprobs, sorted(logprobs, reverse=True))
            self.assertLessEqual(token.logprob, 0.0)

    def test_invalid_argument_has_code_and_message(self):
        with self.assertRaises(MicrogptError) as caught:
            list(self.generator.generate(model=MODEL, top_p=1.5))
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("top_p", caught.exception.message)
        self.assertIn("INVALID_ARGUMENT", str(caught.exception))

    def test_a_generator_of_two_models_needs_the_model_named(self):
        with self.assertRaises(MicrogptError) as caught:
            list(self.generator.generate(seed=1))
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("model must be set", caught.exception.message)

    def test_unknown_model_is_not_found(self):
        with self.assertRaises(MicrogptError) as caught:
            list(self.generator.generate(model="no-such-model"))
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        self.assertIn("no-such-model", caught.exception.message)

    def test_deadline_exceeded(self):
        with self.assertRaises(MicrogptError) as caught:
            list(self.generator.generate(model=MODEL, num_samples=64, timeout=1e-6))
        self.assertEqual(caught.exception.code, grpc.StatusCode.DEADLINE_EXCEEDED)

    def test_unavailable_server(self):
        with Generator("127.0.0.1:1") as nowhere:
            with self.assertRaises(MicrogptError) as caught:
                nowhere.list_models(timeout=5)
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)

    def test_cancel_by_break(self):
        start = time.monotonic()
        for _ in range(20):
            for token in self.generator.generate(model=MODEL, num_samples=64):
                break  # the stream is collected and cancelled here
        self.assertLess(time.monotonic() - start, 20)
        # The server is still fine.
        self.assertTrue(self.generator.complete(model=MODEL, seed=1))

    def test_cancel_by_close_and_with(self):
        stream = self.generator.generate(model=MODEL, num_samples=64)
        first = next(stream)
        self.assertIsInstance(first, Token)
        stream.close()
        self.assertTrue(stream.cancelled)
        self.assertEqual(list(stream), [])  # ends quietly, no CANCELLED error
        with self.generator.generate(model=MODEL, num_samples=64) as stream:
            next(stream)
        self.assertEqual(list(stream), [])

    def test_cancel_from_another_thread(self):
        stream = self.generator.generate(model=MODEL, num_samples=64)
        first = threading.Event()
        done = threading.Event()
        errors = []

        def consume():
            try:
                for _ in stream:
                    first.set()
                    time.sleep(0.001)  # slower than the server, so the stream is still open
            except MicrogptError as error:  # reported below rather than waited on forever
                errors.append(error)
            first.set()
            done.set()

        thread = threading.Thread(target=consume)
        thread.start()
        self.assertTrue(first.wait(30), "no token within 30 s")
        self.assertEqual(errors, [])
        stream.cancel()
        self.assertTrue(done.wait(10), "iteration did not end after cancel()")
        thread.join()


@unittest.skipUnless(GENERATOR and TRAINER, "MICROGPT_GENERATOR and MICROGPT_TRAINER not set")
class TrainerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.trainer = Trainer(TRAINER, timeout=30)
        cls.trainer.wait_ready(timeout=30)
        cls.generator = Generator(GENERATOR, timeout=30)

    @classmethod
    def tearDownClass(cls):
        cls.trainer.close()
        cls.generator.close()

    def test_start_training_and_watch_to_finished(self):
        name = "py-inline"
        job_id = self.trainer.start_training(name, documents=DOCUMENTS, steps=30,
                                             checkpoint_every=10, seed=7, block_size=8)
        self.assertTrue(job_id)
        events = list(self.trainer.watch(job_id, timeout=120))
        self.assertEqual(events[-1].kind, "finished")
        job = events[-1].job
        self.assertEqual(job.state, JobState.SUCCEEDED, job.error)
        self.assertEqual(job.job_id, job_id)
        self.assertEqual(job.progress.step, 30)
        # The job keeps its request (the trainer drops inline documents from it).
        self.assertEqual((job.request.model, job.request.steps), (name, 30))
        self.assertEqual(job.request.WhichOneof("dataset"), "inline_dataset")
        # The job is quick: the watch may join late, and a late watcher first gets the
        # latest progress, so earlier events can be missing.
        progress = [e.progress for e in events if e.kind == "progress"]
        self.assertTrue(progress)
        self.assertEqual([p.step for p in progress], sorted(p.step for p in progress))
        self.assertTrue(all(p.total_steps == 30 for p in progress))
        published = [e.checkpoint.step for e in events if e.kind == "checkpoint_published"]
        self.assertEqual(published, [10, 20, 30][3 - len(published):])

        self.assertEqual(self.trainer.get(job_id).state, "succeeded")
        self.assertIn(job_id, [j.job_id for j in self.trainer.list_trainings()])
        checkpoints = sorted(self.trainer.list_checkpoints(name), key=lambda c: c.step)
        self.assertEqual([c.step for c in checkpoints], [10, 20, 30])
        self.assertEqual(job.latest_version, checkpoints[-1].version)
        self.assertTrue(all(c.model == name for c in checkpoints))

        # The generator shares the checkpoint root and picks the new versions up (polling;
        # it may load an earlier version of the job first).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            latest = {m.name: m.latest_version for m in self.generator.list_models()}
            if latest.get(name) == job.latest_version:
                break
            time.sleep(0.1)
        samples = self.generator.complete(model=name, seed=1, num_samples=2)
        self.assertEqual([s.model for s in samples], [name, name])
        self.assertEqual(samples[0].version, job.latest_version)

    def test_cancel_and_failed_precondition(self):
        job_id = self.trainer.start_training("py-cancel", documents=DOCUMENTS,
                                             steps=1_000_000)
        try:
            with self.assertRaises(MicrogptError) as caught:
                self.trainer.start_training("py-other", documents=DOCUMENTS, steps=10)
            self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        finally:
            self.trainer.cancel(job_id)
        job = self.trainer.wait(job_id, timeout=60)
        self.assertEqual(job.state, JobState.CANCELLED)
        self.assertTrue(job.state.done)
        # The step reached is published (nothing when the cancel came before
        # the first step).
        self.assertEqual([c.version for c in self.trainer.list_checkpoints("py-cancel")],
                         [job.latest_version] if job.latest_version else [])

    def test_watch_sees_checkpoints_of_a_running_job(self):
        job_id = self.trainer.start_training("py-long", documents=DOCUMENTS, steps=1_000_000,
                                             checkpoint_every=50)
        try:
            with self.trainer.watch(job_id, timeout=60) as events:
                for event in events:
                    if event.kind == "checkpoint_published":
                        seen = event.checkpoint
                        break  # leaving the with block cancels the watch, not the job
            self.assertEqual(self.trainer.get(job_id).state, JobState.RUNNING)
        finally:
            self.trainer.cancel(job_id)
        self.assertEqual((seen.model, seen.step % 50), ("py-long", 0))
        self.assertEqual(self.trainer.wait(job_id, timeout=60).state, JobState.CANCELLED)
        # Versions published before the cancel stay.
        self.assertIn(seen.version, [c.version for c in self.trainer.list_checkpoints("py-long")])

    def test_invalid_model_name(self):
        with self.assertRaises(MicrogptError) as caught:
            self.trainer.start_training("not a name!", documents=DOCUMENTS, steps=10)
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertTrue(caught.exception.message)

    def test_unknown_job(self):
        with self.assertRaises(MicrogptError) as caught:
            self.trainer.get("no-such-job")
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(MicrogptError) as caught:
            list(self.trainer.watch("no-such-job"))
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_documents_or_dataset_path(self):
        with self.assertRaises(ValueError):
            self.trainer.start_training("x", documents=["a"], dataset_path="a.txt")
        with self.assertRaises(TypeError):
            self.trainer.start_training("x", documents="one string")


if __name__ == "__main__":
    unittest.main(verbosity=2)
