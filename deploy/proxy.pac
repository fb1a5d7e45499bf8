// PAC file: send known AI hosts through aigress, everything else direct.
// Serve it over HTTP and point browsers/MDM at it. Replace PROXY below.
function FindProxyForURL(url, host) {
  var ai = ["api.openai.com", "chatgpt.com", "chat.openai.com", "api.anthropic.com", "claude.ai",
            "generativelanguage.googleapis.com", "gemini.google.com", "copilot.microsoft.com",
            "api.mistral.ai", "api.cohere.com", "api.groq.com", "api.deepseek.com", "openrouter.ai",
            "perplexity.ai", "poe.com"];
  for (var i = 0; i < ai.length; i++) {
    if (dnsDomainIs(host, ai[i]) || host == ai[i]) return "PROXY aigress.corp.example:8080";
  }
  if (shExpMatch(host, "*.openai.azure.com") || shExpMatch(host, "bedrock-runtime.*.amazonaws.com"))
    return "PROXY aigress.corp.example:8080";
  return "DIRECT";
}
