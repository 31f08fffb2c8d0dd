import { GeneratorClient } from '@microgpt/client';

// A generator that serves several models needs the model named; MICROGPT_MODEL is this
// example's own setting.
const model = process.env.MICROGPT_MODEL || 'names';
// The address is $MICROGPT_GENERATOR (else localhost:50051) and the bearer token
// $MICROGPT_AUTH_TOKEN, as for the microgpt CLI.
const generator = new GeneratorClient();
const controller = new AbortController(); // controller.abort() stops the stream
try {
  const request = { prompt: '', model, temperature: 0.8, topK: 10, seed: 7, numSamples: 2 };
  for await (const token of generator.generate(request, { signal: controller.signal })) {
    const end = token.finishReason ? `  <- ${token.finishReason} (${token.model} v${token.version})` : '';
    console.log(`sample ${token.sampleIndex} pos ${String(token.position).padStart(2)} ${JSON.stringify(token.text)}${end}`);
  }
} finally {
  generator.close();
}
