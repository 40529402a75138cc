// minichat web chat. One message = one POST /v1/minichat/events; the answer is a stream of server-sent events, one
// pipeline event per `data:` line (minichat/chat/events.py), ended by `data: [DONE]`. EventSource cannot send an
// Authorization header or a POST body, so the stream is read with fetch() and split on blank lines by hand.
"use strict";

const $ = (id) => document.getElementById(id);
let conversation = "web-" + Math.random().toString(36).slice(2, 10);
let busy = false;

function key() { return sessionStorage.getItem("minichat-key") || ""; }

function showKeyState() {
  $("key-state").textContent = key() ? "key set for this tab" : "enter your key (minichat keys add)";
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem("minichat-key", $("key").value.trim());
  $("key").value = "";
  showKeyState();
});

$("new").addEventListener("click", () => {
  conversation = "web-" + Math.random().toString(36).slice(2, 10);
  $("log").textContent = "";
  $("stages").textContent = "";
  $("tokens").textContent = "";
});

$("message").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("send-form").requestSubmit(); }
});

function bubble(role, text) {
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("log").appendChild(div);
  $("log").scrollTop = $("log").scrollHeight;
  return div;
}

function stage(title, detail) {
  const d = document.createElement("details");
  d.className = "stage";
  const s = document.createElement("summary");
  s.textContent = title;
  const pre = document.createElement("pre");
  pre.textContent = typeof detail === "string" ? detail : JSON.stringify(detail, null, 1);
  d.append(s, pre);
  $("stages").appendChild(d);
  return d;
}

function describe(ev) {
  switch (ev.type) {
    case "safety_verdict": return `safety (${ev.stage}): ${ev.allowed ? "allowed" : ev.action}`;
    case "memory_hits":
      return `memory: ${ev.snippets.length} snippet(s)${ev.configured ? "" : " (no memory store)"}`;
    case "context_built":
      return `context: ${ev.used}/${ev.budget} tokens, kept ${ev.kept.length}, dropped ${ev.dropped.length}`;
    case "tokenized":
      return `tokenized: ${ev.prompt_tokens} prompt tokens, ${ev.cached_tokens} cached, ${ev.prefill_tokens} prefilled`;
    case "tool_call": return `tool call: ${ev.name}`;
    case "tool_result": return `tool result: ${ev.name} ${ev.ok ? "ok" : "failed"}`;
    case "memory_updated": return `memory updated: ${ev.action}`;
    case "done": return `done: ${ev.finish_reason}, ${ev.usage.completion_tokens} tokens`;
    default: return ev.type;
  }
}

function onEvent(ev, reply, tokenCount) {
  if (ev.type === "token") {
    reply.textContent += ev.text;
    const span = document.createElement("span");
    span.textContent = ev.text || "\u2205";  // empty: held back (part of a tool call, a stop string or a character)
    span.title = `id ${ev.token_id}, position ${ev.index}${ev.text ? "" : " (text held back)"}`;
    $("tokens").appendChild(span);
    tokenCount.n += 1;
    tokenCount.node.querySelector("summary").textContent = `tokens: ${tokenCount.n} generated`;
    $("log").scrollTop = $("log").scrollHeight;
    return;
  }
  const d = stage(describe(ev), ev);
  if (ev.type === "context_built") {
    const lines = ev.kept.map((m) => `kept    #${m.index} ${m.role} (${m.tokens} tokens)`)
      .concat(ev.dropped.map((m) => `dropped #${m.index} ${m.role} (${m.tokens} tokens): ${m.reason}`));
    d.querySelector("pre").textContent = lines.join("\n") + "\n" + JSON.stringify(ev, null, 1);
  }
  if (ev.type === "done") {
    const t = Object.entries(ev.timings).map(([k, v]) => `${k}: ${(1000 * v).toFixed(1)} ms`).join("\n");
    stage("timings", t);
  }
  if (ev.type === "tool_result" && reply.textContent) reply.textContent += "\n";  // the next round's text
  if (ev.type === "tool_call" || ev.type === "tool_result") {
    const div = document.createElement("div");
    div.className = "tool";
    div.textContent = ev.type === "tool_call" ? `→ ${ev.name}(${JSON.stringify(ev.arguments)})`
                                              : `← ${ev.name}: ${ev.content}`;
    reply.before(div);
  }
  if (ev.type === "safety_verdict") {
    const span = document.createElement("div");
    span.className = "verdict " + (ev.allowed ? "allowed" : "blocked");
    const why = ev.policy ? ` (${ev.policy})` : "";
    span.textContent = `safety ${ev.stage}: ${ev.allowed ? "allowed" : ev.action + why}`;
    reply.before(span);
  }
}

async function send(text) {
  bubble("user", text);
  const reply = bubble("assistant", "");
  $("stages").textContent = "";
  $("tokens").textContent = "";
  const tokenCount = { n: 0, node: stage("tokens: 0 generated", "see the token strip below") };
  const res = await fetch("/v1/minichat/events", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Authorization": "Bearer " + key() },
    body: JSON.stringify({ message: text, conversation }),
  });
  if (!res.ok) {
    let msg = res.status + " " + res.statusText;
    try { msg = (await res.json()).error.message; } catch (_) { /* not JSON */ }
    reply.className = "msg error";
    reply.textContent = msg;
    return;
  }
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (!data || data === "[DONE]") continue;
      const ev = JSON.parse(data);
      if (ev.error) { reply.className = "msg error"; reply.textContent += "\n" + ev.error.message; continue; }
      onEvent(ev, reply, tokenCount);
    }
  }
}

$("send-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const text = $("message").value.trim();
  if (!text || busy) return;
  if (!key()) { showKeyState(); $("key").focus(); return; }
  busy = true;
  $("send").disabled = true;
  $("message").value = "";
  try { await send(text); } catch (err) { bubble("error", String(err)); }
  finally { busy = false; $("send").disabled = false; $("message").focus(); }
});

showKeyState();
