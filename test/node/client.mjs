// Real Node client for the end-to-end tests: the official openai SDK
// (openai@6) through undici's EnvHttpProxyAgent, which honours
// HTTPS_PROXY; the aigress CA comes from NODE_EXTRA_CA_CERTS.
// Usage: node client.mjs chat|stream MODEL PROMPT
// Prints one JSON line: {"ok":true,"text":...,"usage":...} or
// {"ok":false,"status":...,"message":...}.
import OpenAI from "openai";
import { EnvHttpProxyAgent, setGlobalDispatcher } from "undici";

const dispatcher = new EnvHttpProxyAgent();
setGlobalDispatcher(dispatcher);
const [mode, model, prompt] = process.argv.slice(2);
const client = new OpenAI({
  apiKey: process.env.OPENAI_API_KEY || "sk-test-node-not-real",
  maxRetries: 0,
  timeout: 20000,
  fetchOptions: { dispatcher },
});

try {
  if (mode === "stream") {
    const stream = await client.chat.completions.create({
      model, stream: true, stream_options: { include_usage: true },
      messages: [{ role: "user", content: prompt }],
    });
    let text = "";
    let usage = null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices?.[0]?.delta?.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    console.log(JSON.stringify({ ok: true, text, usage, chunks }));
  } else {
    const r = await client.chat.completions.create({ model, messages: [{ role: "user", content: prompt }] });
    console.log(JSON.stringify({ ok: true, text: r.choices[0].message.content, usage: r.usage }));
  }
} catch (e) {
  console.log(JSON.stringify({ ok: false, status: e.status ?? null, message: String(e.message ?? e) }));
}
