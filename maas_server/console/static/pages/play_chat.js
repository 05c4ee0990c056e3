// Chat: streaming, temperature, max tokens, a system prompt, JSON-schema mode, tool calls.

import { call, el, stream } from "../api.js";
import { curl, maasClient, openaiClient, py, showCode } from "../code.js";
import { field, form } from "./play.js";

const EXAMPLE_TOOLS = [{ type: "function", function: { name: "get_weather", description: "Weather in a city",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];

export function mount({ model, form: host, result }) {
  const system = el("textarea", { rows: 2, value: "You are a helpful assistant." });
  const user = el("textarea", { rows: 3, value: "Write one sentence about the sea.", required: true });
  const temperature = el("input", { type: "number", min: 0, max: 2, step: 0.1, value: 0.7 });
  const maxTokens = el("input", { type: "number", min: 1, value: 64 });
  const streamed = el("input", { type: "checkbox", checked: true });
  const schema = el("textarea", { rows: 3, placeholder: '{"type": "object", "properties": {"answer": {"type": "string"}}}' });
  const tools = el("textarea", { rows: 3, placeholder: JSON.stringify(EXAMPLE_TOOLS) });
  const toolChoice = el("select", {}, ...["auto", "required", "none"].map((v) => el("option", { value: v, text: v })));
  const example = el("button", { type: "button", text: "Fill in an example tool",
    onclick: () => { tools.value = JSON.stringify(EXAMPLE_TOOLS, null, 2); toolChoice.value = "required"; } });
  host.append(form([
    field("System prompt", system), field("Message", user),
    field("Temperature", temperature), field("Max tokens", maxTokens),
    el("label", { class: "inline" }, streamed, " Stream the answer"),
    field("JSON schema (optional: the answer must match it)", schema),
    field("Tools (optional: a JSON list of OpenAI tool definitions)", tools), example,
    field("Tool choice", toolChoice, "required: the model must call a tool"),
  ], "Send", () => run(model, { system, user, temperature, maxTokens, streamed, schema, tools, toolChoice }, result)));
}

function body(model, inputs) {
  const messages = [];
  if (inputs.system.value.trim()) messages.push({ role: "system", content: inputs.system.value });
  messages.push({ role: "user", content: inputs.user.value });
  const request = { model: model.id, messages, temperature: Number(inputs.temperature.value),
    max_tokens: Number(inputs.maxTokens.value) };
  if (inputs.schema.value.trim()) {
    request.response_format = { type: "json_schema",
      json_schema: { name: "answer", schema: parseJson(inputs.schema.value, "JSON schema") } };
  }
  if (inputs.tools.value.trim()) {
    request.tools = parseJson(inputs.tools.value, "Tools");
    request.tool_choice = inputs.toolChoice.value;
  }
  if (inputs.streamed.checked) request.stream = true;
  return request;
}

function parseJson(text, what) {
  try { return JSON.parse(text); } catch (error) { throw new Error(`${what} is not valid JSON: ${error.message}`); }
}

async function run(model, inputs, result) {
  const request = body(model, inputs);
  const answer = el("div", { class: "answer", "data-role": "answer" });
  const calls = el("ul", { class: "tool-calls", "aria-label": "Tool calls" });
  result.replaceChildren(el("h2", { text: "Answer" }), answer, calls);
  let text = "";
  const toolCalls = [];
  if (request.stream) {
    await stream("/v1/chat/completions", request, (chunk) => {
      const delta = chunk.choices?.[0]?.delta || {};
      if (delta.content) { text += delta.content; answer.textContent = text; }
      for (const call of delta.tool_calls || []) mergeToolCall(toolCalls, call);
    });
  } else {
    const reply = await call("/v1/chat/completions", request);
    const message = reply.choices[0].message;
    text = message.content || "";
    answer.textContent = text;
    toolCalls.push(...(message.tool_calls || []));
  }
  showToolCalls(calls, toolCalls);
  if (request.response_format) showParsed(result, text);
  showCode(code(request));
}

function mergeToolCall(calls, delta) {
  const index = delta.index ?? calls.length;
  calls[index] ||= { id: delta.id, function: { name: "", arguments: "" } };
  if (delta.function?.name) calls[index].function.name += delta.function.name;
  if (delta.function?.arguments) calls[index].function.arguments += delta.function.arguments;
}

function showToolCalls(list, calls) {
  list.replaceChildren(...calls.map((c) => el("li", { class: "tool-call" },
    el("code", { text: `${c.function.name}(${c.function.arguments})` }))));
}

function showParsed(result, text) {
  let parsed;
  try { parsed = JSON.stringify(JSON.parse(text), null, 2); } catch (error) { parsed = `not JSON: ${error.message}`; }
  result.append(el("h2", { text: "Parsed result" }), el("pre", { "data-role": "parsed", text: parsed }));
}

function code(request) {
  const { model, messages, stream: streamed, ...rest } = request;
  const options = Object.entries(rest).map(([k, v]) => `    ${k}=${py(v, 4)},\n`).join("");
  const args = `    model=${py(model)},\n${options}${streamed ? "    stream=True,\n" : ""}`;
  const openai = `client.chat.completions.create(\n    messages=${py(messages, 4)},\n${args})`;
  const maas = `client.chat(\n    ${py(messages, 4)},\n${args})`;
  const show = (create) => (streamed
    ? `for chunk in ${create}:\n    print(chunk.choices[0].delta.content or "", end="")`
    : `reply = ${create}\nprint(reply.choices[0].message)`);
  return {
    curl: curl("/v1/chat/completions", { json: request }),
    maas_client: maasClient(show(maas)),
    openai: openaiClient(show(openai)),
  };
}
