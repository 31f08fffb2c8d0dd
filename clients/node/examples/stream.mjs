import { GeneratorClient } from '@microgpt/client';

const generator = new GeneratorClient(); // $MICROGPT_GENERATOR, else localhost:50051
const controller = new AbortController(); // controller.abort() stops the stream
try {
  const request = { prompt: '', temperature: 0.8, topK: 10, seed: 7, numSamples: 2 };
  for await (const token of generator.generate(request, { signal: controller.signal })) {
    const end = token.finishReason ? `  <- ${token.finishReason} (${token.model} v${token.version})` : '';
    console.log(`sample ${token.sampleIndex} pos ${String(token.position).padStart(2)} ${JSON.stringify(token.text)}${end}`);
  }
} finally {
  generator.close();
}
